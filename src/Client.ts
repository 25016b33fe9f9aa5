import { HttpApiClient } from "@effect/platform"
import type { HttpClient } from "@effect/platform"
import { Effect, Schema } from "effect"
import { Api, defaultLimit } from "./Api.js"
import type { ProductId } from "./Domain/Product.js"
import { CreateProduct, UpdateProduct } from "./Domain/Product.js"

// A typed client of the service, made by HttpApiClient from the same `Api` the server serves: the paths, payloads,
// answers and errors cannot drift from the server's. What it adds is the shape a caller expects: the contract's
// defaults may be left out (HttpApiClient takes a payload as its decoded type, where a default is already filled in),
// and ids are plain numbers (the service checks them; the brand is the server's own bookkeeping).

export { Api } from "./Api.js"
export type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
export {
  ExpectationFailed,
  InternalError,
  InvalidRequest,
  MethodNotAllowed,
  NotFound,
  PayloadTooLarge,
  RequestHeaderFieldsTooLarge,
  RequestTimeout,
  Unavailable,
  UnsupportedMediaType
} from "./Api.js"

export interface Options {
  /** Where the service answers, e.g. `http://localhost:3000`. */
  readonly baseUrl: string | URL
}

/** A page of the list: both default as the service says (0 and 20). */
export interface ListOptions {
  readonly offset?: number
  readonly limit?: number
}

/** The generated client itself, one method per endpoint, grouped as in `Api`. */
export type Generated = Effect.Effect.Success<ReturnType<typeof generatedClient>>

const generatedClient = (options: Options) => HttpApiClient.make(Api, { baseUrl: options.baseUrl })

// Read back through the payload schema, which fills in the defaults as the server would; invalid input fails here as
// a ParseError, before a request is sent.
const createPayload = (input: typeof CreateProduct.Encoded) => Schema.decode(CreateProduct)(input)
const updatePayload = (patch: typeof UpdateProduct.Encoded) => Schema.decode(UpdateProduct)(patch)

/**
 * A client of the catalog at `baseUrl`. Each method answers the body the contract describes, or fails with the
 * contract's error for its status (`NotFound`, `InvalidRequest`, `Unavailable`...: tagged by their `error` code), an
 * `HttpClientError` or a `ParseError`. It needs an `HttpClient`: `FetchHttpClient.layer` from `@effect/platform`.
 */
export const make = (options: Options) =>
  Effect.map(generatedClient(options), (client) => ({
    listProducts: (page: ListOptions = {}) =>
      client.products.list({ urlParams: { offset: page.offset ?? 0, limit: page.limit ?? defaultLimit } }),
    getProduct: (id: number) => client.products.get({ path: { id: id as ProductId } }),
    createProduct: (input: typeof CreateProduct.Encoded) =>
      Effect.flatMap(createPayload(input), (payload) => client.products.create({ payload })),
    updateProduct: (id: number, patch: typeof UpdateProduct.Encoded) =>
      Effect.flatMap(updatePayload(patch), (payload) =>
        client.products.update({ path: { id: id as ProductId }, payload })
      ),
    deleteProduct: (id: number) => client.products.remove({ path: { id: id as ProductId } }),
    getCacheStats: () => client.cache.stats(),
    resetCacheStats: () => client.cache.reset(),
    getHealth: () => client.health.health(),
    getMetrics: () => client.metrics.metrics(),
    /** Every endpoint as HttpApiClient makes it, for what the methods above leave out. */
    generated: client
  }))

export type CatalogClient = Effect.Effect.Success<ReturnType<typeof make>>

/** What a `make` needs besides its options. */
export type Requirements = HttpClient.HttpClient
