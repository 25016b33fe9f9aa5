import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import * as ApiDocument from "./Api/Document.js"
import {
  CreateProduct,
  exampleProduct,
  Product,
  ProductIdFromString,
  Timestamp,
  UpdateProduct
} from "./Domain/Product.js"

// Errors a client sees: `{"error":"<code>","message":"..."}` exactly, so plain classes with a literal `error` field
// (a TaggedError would add `_tag` to the body).
const errorClass = <const Code extends string>(name: string, code: Code, status: number, description: string) =>
  Schema.Class<{ readonly error: Code; readonly message: string }>(name)(
    { error: Schema.tag(code), message: Schema.String.annotations({ description: "For a person; names the field" }) },
    HttpApiSchema.annotations({ status, description })
  )

export class InvalidRequest extends errorClass(
  "InvalidRequest",
  "invalid_request",
  400,
  "A path id, query parameter or body the contract refuses; the message names each field"
) {}
export class NotFound extends errorClass("NotFound", "not_found", 404, "No product with this id") {}
export class MethodNotAllowed extends errorClass(
  "MethodNotAllowed",
  "method_not_allowed",
  405,
  "A known path with a method it does not serve"
) {}
export class PayloadTooLarge extends errorClass(
  "PayloadTooLarge",
  "payload_too_large",
  413,
  "The request body is over 1 MiB (1048576 bytes)"
) {}
export class RequestTimeout extends errorClass(
  "RequestTimeout",
  "request_timeout",
  408,
  "The request was not received within REQUEST_TIMEOUT (or its headers within HEADERS_TIMEOUT); answered by the server before any route, on any path"
) {}
export class RequestHeaderFieldsTooLarge extends errorClass(
  "RequestHeaderFieldsTooLarge",
  "request_header_fields_too_large",
  431,
  "The request headers are over 16 KiB; answered by the server before any route, on any path"
) {}
export class ExpectationFailed extends errorClass(
  "ExpectationFailed",
  "expectation_failed",
  417,
  "An `Expect` header other than `100-continue`; answered by the server before any route, on any path"
) {}
export class UnsupportedMediaType extends errorClass(
  "UnsupportedMediaType",
  "unsupported_media_type",
  415,
  "The request body is not application/json"
) {}
export class InternalError extends errorClass(
  "InternalError",
  "internal_error",
  500,
  "An unexpected failure; the body reveals nothing of it"
) {}
export class Unavailable extends errorClass(
  "Unavailable",
  "unavailable",
  503,
  "The database is unavailable; try again later"
) {}

// The words of the errors the handlers answer themselves, in one place: the lean path and the HttpApi routes send
// the same bodies.
export const productNotFound = (id: number) => new NotFound({ message: `product ${id} not found` })
export const databaseUnavailable = new Unavailable({ message: "the database is unavailable, try again later" })
export const unexpectedError = new InternalError({ message: "an unexpected error occurred" })

/** Rejects a POST that the contract says takes no body, when it comes with one. */
export class RequireNoBody extends HttpApiMiddleware.Tag<RequireNoBody>()("RequireNoBody", {
  failure: InvalidRequest
}) {}

/** Rejects a POST/PUT whose body is not `application/json` before the body is read. */
export class RequireJson extends HttpApiMiddleware.Tag<RequireJson>()("RequireJson", {
  failure: UnsupportedMediaType
}) {}

export const defaultLimit = 20
export const maxLimit = 100

// The service reads decimal digits only (no `1e3`); OpenAPI says "integer", which is what a client sends. Any
// safe integer is taken (an offset past the last product is an empty page), a larger one is named as such.
const integerParam = (name: string, jsonSchema: object) =>
  Schema.String.pipe(
    Schema.pattern(/^[0-9]+$/, { message: () => `${name} must be an integer >= ${minimumOf(jsonSchema)}` }),
    Schema.compose(Schema.NumberFromString),
    Schema.filter((n) => n >= minimumOf(jsonSchema) || `${name} must be an integer >= ${minimumOf(jsonSchema)}`),
    Schema.filter((n) => n <= Number.MAX_SAFE_INTEGER || `${name} must be at most ${Number.MAX_SAFE_INTEGER}`),
    Schema.annotations({ jsonSchema: { type: "integer", maximum: Number.MAX_SAFE_INTEGER, ...jsonSchema } })
  )
const minimumOf = (jsonSchema: object) => ("minimum" in jsonSchema ? Number(jsonSchema.minimum) : 0)

export const ListParams = Schema.Struct({
  offset: Schema.optionalWith(
    integerParam("offset", { minimum: 0, default: 0, description: "How many products to skip, in id order" }),
    { default: () => 0 }
  ),
  // Larger limits are lowered to 100 by the handler, not refused.
  limit: Schema.optionalWith(
    integerParam("limit", {
      minimum: 1,
      default: defaultLimit,
      description: `Page size; a value over ${maxLimit} is lowered to ${maxLimit} (the answer's \`limit\` shows the one used)`
    }),
    { default: () => defaultLimit }
  )
})

const IdPath = Schema.Struct({ id: ProductIdFromString })

// `Schema.Int` carries the identifier "Int", which the document would show as a component of its own (a generator makes
// a `type Int = number` of it): the same rule without the name.
const Integer = Schema.Number.pipe(Schema.int())
const NonNegativeInt = Integer.pipe(Schema.nonNegative())
const DurationMs = Schema.Number.pipe(Schema.nonNegative()).annotations({
  description: "Time the service spent on the request, in milliseconds (with fractions)"
})
const FromCache = Schema.Boolean.annotations({ description: "Whether the answer came from the cache" })

const example = Product.make(exampleProduct)

const ProductRead = Schema.Struct({ product: Product, from_cache: FromCache, duration_ms: DurationMs }).annotations({
  identifier: "ProductRead",
  examples: [{ product: example, from_cache: true, duration_ms: 0.412 }]
})
const ProductPageRead = Schema.Struct({
  products: Schema.Array(Product),
  total: NonNegativeInt.annotations({ description: "How many products there are in all" }),
  offset: NonNegativeInt,
  limit: Integer.pipe(Schema.between(1, maxLimit)),
  from_cache: FromCache,
  duration_ms: DurationMs
}).annotations({
  identifier: "ProductPage",
  examples: [{ products: [example], total: 1, offset: 0, limit: 20, from_cache: false, duration_ms: 1.87 }]
})
// The status is annotated here, with the identifier: `addSuccess(schema, { status })` re-annotates the schema, which
// drops its identifier, and the document then inlines it with no name for a generator to use.
const written = (identifier: string, message: string, status: number) =>
  Schema.Struct({ message: Schema.Literal(message), product: Product }).annotations({
    identifier,
    examples: [{ message, product: example }],
    ...HttpApiSchema.annotations({ status })
  })
const ProductCreated = written("ProductCreated", "Product created successfully", 201)
const ProductUpdated = written("ProductUpdated", "Product updated successfully, cache invalidated", 200)
const ProductDeleted = Schema.Struct({
  message: Schema.Literal("Product deleted successfully, cache invalidated")
}).annotations({ identifier: "ProductDeleted" })

export const CacheStatsBody = Schema.Struct({
  hits: NonNegativeInt,
  misses: NonNegativeInt,
  sets: NonNegativeInt,
  deletes: NonNegativeInt,
  errors: NonNegativeInt,
  hit_rate: Schema.Number.pipe(Schema.between(0, 1)).annotations({ description: "hits / total_gets; 0 when none" }),
  total_gets: NonNegativeInt.annotations({ description: "hits + misses" }),
  stale: NonNegativeInt.annotations({
    description:
      "Reads answered with a fallback copy (`X-Cache: STALE`) because the database failed; each was also a miss. " +
      "Always 0 without CACHE_GRACE"
  })
}).annotations({ identifier: "CacheStats" })
const zeroStats = { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0, hit_rate: 0, total_gets: 0, stale: 0 }

const healthBody = <const Status extends string, const Database extends string>(
  identifier: string,
  status: ReadonlyArray<Status>,
  database: Database,
  extra: { readonly status: number; readonly description: string }
) =>
  Schema.Struct({
    service: Schema.String,
    status: Schema.Literal(...status),
    checks: Schema.Struct({ database: Schema.Literal(database), cache: Schema.Literal("up", "down") }),
    timestamp: Timestamp,
    database_writes: Schema.optional(Schema.Literal("busy", "failing")).annotations({
      description: "Only when recent writes were held up by another process's lock, or failed, while reads still work"
    }),
    cache_topology: Schema.Literal("memory", "single", "sentinel", "cluster").annotations({
      description: "The cache in use: CACHE_BACKEND=memory, one Redis, Redis behind Sentinels, or a Redis Cluster"
    }),
    cache_masters: Schema.optional(
      Schema.Struct({ total: Integer, answering: Integer }).annotations({ identifier: "CacheMasters" })
    ).annotations({ description: "Only for a Redis Cluster: its masters, and how many answered a ping just now" })
  }).annotations({
    identifier,
    ...HttpApiSchema.annotations(extra),
    examples: [
      {
        service: "product-catalog",
        status: status[0]!,
        checks: { database, cache: "up" as const },
        timestamp: "2026-11-25T10:30:00.000Z",
        cache_topology: "single" as const
      }
    ]
  })
const Health = healthBody("Health", ["healthy", "degraded"], "up", {
  status: 200,
  description: "The database answers; `degraded` when the cache is down or writes are held up"
})
const Unhealthy = healthBody("Unhealthy", ["unhealthy"], "down", {
  status: 503,
  description: "The database cannot be read"
})

const X = ApiDocument.headers

export class ProductsApi extends HttpApiGroup.make("products")
  .add(
    HttpApiEndpoint.get("list", "/api/v1/products")
      .setUrlParams(ListParams)
      .addSuccess(ProductPageRead)
      .addError(InvalidRequest)
      .annotateContext(
        OpenApi.annotations({
          identifier: "listProducts",
          summary: "List products",
          description: "A page of products in id order, read through the cache.",
          transform: ApiDocument.responseHeaders({ 200: { "X-Cache": X.xCache, Age: X.age } })
        })
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/api/v1/products/:id")
      .setPath(IdPath)
      .addSuccess(ProductRead)
      .addError(InvalidRequest)
      .addError(NotFound)
      .annotateContext(
        OpenApi.annotations({
          identifier: "getProduct",
          summary: "Get a product",
          description: "One product, read through the cache (a recent 404 may be remembered, until a write).",
          transform: ApiDocument.responseHeaders({ 200: { "X-Cache": X.xCache, Age: X.age } })
        })
      )
  )
  .add(
    HttpApiEndpoint.post("create", "/api/v1/products")
      .setPayload(CreateProduct)
      .addSuccess(ProductCreated)
      .addError(InvalidRequest)
      .middleware(RequireJson)
      .annotateContext(
        OpenApi.annotations({
          identifier: "createProduct",
          summary: "Create a product",
          description: "Unknown fields are refused, never ignored. Invalidates the cached list pages.",
          transform: ApiDocument.responseHeaders({ 201: { Location: X.location } })
        })
      )
  )
  .add(
    HttpApiEndpoint.put("update", "/api/v1/products/:id")
      .setPath(IdPath)
      .setPayload(UpdateProduct)
      .addSuccess(ProductUpdated)
      .addError(InvalidRequest)
      .addError(NotFound)
      .middleware(RequireJson)
      .annotateContext(
        OpenApi.annotations({
          identifier: "updateProduct",
          summary: "Update a product",
          description: "A partial update of at least one field; answers the product as stored. Invalidates its cache."
        })
      )
  )
  .add(
    HttpApiEndpoint.del("remove", "/api/v1/products/:id")
      .setPath(IdPath)
      .addSuccess(ProductDeleted)
      .addError(InvalidRequest)
      .addError(NotFound)
      .annotateContext(
        OpenApi.annotations({
          identifier: "deleteProduct",
          summary: "Delete a product",
          description: "Invalidates its cache."
        })
      )
  )
  .addError(Unavailable)
  .annotate(OpenApi.Description, "The catalog: reads are cached in Redis (cache-aside), writes invalidate") {}

export class CacheApi extends HttpApiGroup.make("cache")
  .add(
    HttpApiEndpoint.get("stats", "/api/v1/cache/stats")
      .addSuccess(
        Schema.Struct({ cache_stats: CacheStatsBody, timestamp: Timestamp }).annotations({
          identifier: "CacheStatsRead",
          examples: [{ cache_stats: zeroStats, timestamp: "2026-11-25T10:30:00.000Z" }]
        })
      )
      .annotateContext(OpenApi.annotations({ identifier: "getCacheStats", summary: "Cache statistics" }))
  )
  .add(
    HttpApiEndpoint.post("reset", "/api/v1/cache/stats/reset")
      .addSuccess(
        Schema.Struct({
          message: Schema.Literal("Cache statistics reset"),
          cache_stats: CacheStatsBody,
          timestamp: Timestamp
        }).annotations({
          identifier: "CacheStatsReset",
          examples: [
            { message: "Cache statistics reset", cache_stats: zeroStats, timestamp: "2026-11-25T10:30:00.000Z" }
          ]
        })
      )
      .addError(InvalidRequest)
      .middleware(RequireNoBody)
      .annotateContext(
        OpenApi.annotations({
          identifier: "resetCacheStats",
          summary: "Reset the cache statistics",
          description: "Takes no body: a request with one is refused (400) and resets nothing."
        })
      )
  )
  .annotate(OpenApi.Description, "This instance's cache counters") {}

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("health", "/health")
      .addSuccess(Health)
      .addError(Unhealthy)
      .annotateContext(
        OpenApi.annotations({ identifier: "getHealth", summary: "Health of the service and its dependencies" })
      )
  )
  .annotate(OpenApi.Description, "For load balancers and orchestrators") {}

/** Prometheus scrapes this; the handler writes the text format itself (Metrics/PrometheusText.ts). */
export class MetricsApi extends HttpApiGroup.make("metrics")
  .add(
    HttpApiEndpoint.get("metrics", "/metrics")
      .addSuccess(
        Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
      )
      .annotateContext(
        OpenApi.annotations({ identifier: "getMetrics", summary: "Prometheus metrics (text format 0.0.4)" })
      )
  )
  .annotate(OpenApi.Description, "For Prometheus") {}

/** The feed the dashboard (`/dashboard`) draws; read-only. The handler writes the stream itself (Dashboard/Feed.ts). */
export class DashboardApi extends HttpApiGroup.make("dashboard")
  .add(
    HttpApiEndpoint.get("events", "/api/v1/cache/events")
      .addSuccess(Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/event-stream" })))
      .annotateContext(
        OpenApi.annotations({
          identifier: "streamCacheEvents",
          summary: "Live cache activity (Server-Sent Events)",
          description: ApiDocument.eventsDescription
        })
      )
  )
  .annotate(OpenApi.Description, "The live view of the cache at /dashboard") {}

/** The contract of `../shared/spec/API.md` as an HttpApi: routes, schemas, statuses and the OpenAPI document. */
export class Api extends HttpApi.make("catalog")
  .add(ProductsApi)
  .add(CacheApi)
  .add(HealthApi)
  .add(MetricsApi)
  .add(DashboardApi)
  // Any operation may give these: the contract middleware refuses a body over 1 MiB whatever the route, the
  // last-resort answer (Http/Server.ts) is a 500, and the Node server's own refusals come before any route.
  .addError(PayloadTooLarge)
  .addError(InternalError)
  // Answered by the Node server before any route (Http/NodeServer.ts), whatever the path, in the same JSON.
  .addError(RequestTimeout)
  .addError(ExpectationFailed)
  .addError(RequestHeaderFieldsTooLarge)
  .annotateContext(
    OpenApi.annotations({
      title: "Product catalog with Redis cache-aside",
      version: "0.1.0",
      license: { name: "MIT", url: "https://opensource.org/licenses/MIT" },
      servers: [{ url: "/", description: "The instance serving this document" }],
      description: ApiDocument.description,
      transform: ApiDocument.finish
    })
  )
  // The 405 is the answer for a method no operation has, so no endpoint declares it: `finish` adds it to every
  // operation of a path (components.responses.MethodNotAllowed, with `Allow`), and refers to its body here.
  .annotate(HttpApi.AdditionalSchemas, [MethodNotAllowed]) {}
