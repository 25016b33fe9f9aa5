import { Effect } from "effect"
import { databaseUnavailable, maxLimit, productNotFound } from "../Api.js"
import type { SqlError } from "@effect/sql/SqlError"
import type { ProductId, ProductNotFound } from "../Domain/Product.js"
import { CatalogRead } from "../ProductService.js"
import type { CatalogAnswer, ProductService } from "../ProductService.js"

// The answers of the two cached reads, as status and JSON text. Both request paths write exactly these bytes: the
// HttpApi routes (Products.ts) and the fast path (FastPath.ts), so the two can never disagree.
//
// Written as text rather than encoded by the success schemas: a cache hit is served as the bytes Redis holds, and
// the field order is the contract's. The schemas in Api.ts still describe them for OpenAPI.

export interface ReadAnswer {
  readonly status: 200 | 404 | 503
  readonly body: string
  /** `X-Cache`, on the answers that came through the cache. */
  readonly xCache?: "HIT" | "MISS" | "STALE"
  /** `Age` in seconds, on a STALE answer only. */
  readonly age?: number
  /** What made the database unavailable: logged in full by the caller, never shown to the client. */
  readonly failure?: unknown
  /** The cache failed this read (`X-Cache` says MISS): shown on the dashboard and in the request's log line. */
  readonly cacheFailed?: true
}

const elapsedSince = (started: number) => Math.round((performance.now() - started) * 1000) / 1000

const notFound = (error: { readonly id: ProductId }): ReadAnswer => ({
  status: 404,
  body: JSON.stringify(productNotFound(error.id))
})

const unavailableBody = JSON.stringify(databaseUnavailable)

const unavailable = (failure: unknown) => Effect.succeed<ReadAnswer>({ status: 503, body: unavailableBody, failure })

/**
 * The log line of an answer that hid a failure. Left to the caller, which runs it where the request's id annotates
 * the log, so a read's fiber needs no annotation of its own on every request.
 */
export const logFailure = (answer: ReadAnswer) =>
  answer.failure === undefined ? Effect.void : Effect.logError("database failure", answer.failure)

/** A fallback copy answered because the database failed (CACHE_GRACE): the failure is still logged. */
const staleAnswer = (body: string, served: CatalogAnswer): ReadAnswer => ({
  status: 200,
  body,
  xCache: "STALE",
  age: Math.floor(served.age! / 1000),
  failure: served.failure
})

const freshAnswer = (body: string, served: CatalogAnswer): ReadAnswer =>
  served.cacheFailed
    ? { status: 200, body, xCache: "MISS", cacheFailed: true }
    : { status: 200, body, xCache: served.fromCache ? "HIT" : "MISS" }

/** The answer of GET /api/v1/products/:id that found the product, for a read begun at `started`. */
export const productFound = (served: CatalogAnswer, started: number): ReadAnswer => {
  const { fromCache, json } = served
  const body = `{"product":${json},"from_cache":${fromCache},"duration_ms":${elapsedSince(started)}}`
  return served.age === undefined ? freshAnswer(body, served) : staleAnswer(body, served)
}

/** A read as a batch answers it: the effect that answers it, settled (an `Exit`) when its value is known. */
export type BatchAnswer = Effect.Effect<CatalogAnswer, ProductNotFound | SqlError>

/** GET /api/v1/products/:id, answered by `read` (`ProductService.getById` or a read `getMany` handed over). */
export const productBy = (
  read: Effect.Effect<CatalogAnswer, ProductNotFound | SqlError>,
  started = performance.now()
): Effect.Effect<ReadAnswer> =>
  read.pipe(
    Effect.map((served) => productFound(served, started)),
    Effect.catchTags({ ProductNotFound: (error) => Effect.succeed(notFound(error)), SqlError: unavailable })
  )

/** GET /api/v1/products/:id */
export const product = (products: ProductService, id: ProductId, started = performance.now()) =>
  productBy(products.getById(id), started)

/** The answer of GET /api/v1/products with `served` as its page, for a read begun at `started`. */
export const pageFound = (served: CatalogAnswer, offset: number, limit: number, started: number): ReadAnswer => {
  const { fromCache, json } = served
  // The cached page is `{"products":[...],"total":N}`, extended in place instead of parsed.
  const body = `${json.slice(0, -1)},"offset":${offset},"limit":${limit},"from_cache":${fromCache},"duration_ms":${elapsedSince(started)}}`
  return served.age === undefined ? freshAnswer(body, served) : staleAnswer(body, served)
}

/** GET /api/v1/products, answered by `read` (`ProductService.list` or a read `getMany` handed over). */
export const pageBy = (
  read: Effect.Effect<CatalogAnswer, ProductNotFound | SqlError>,
  offset: number,
  limit: number,
  started = performance.now()
): Effect.Effect<ReadAnswer> =>
  read.pipe(
    Effect.map((served) => pageFound(served, offset, limit, started)),
    // A page is never absent: were it reported so, the 500 of an unexpected failure answers.
    Effect.catchTags({ ProductNotFound: (error) => Effect.die(error), SqlError: unavailable })
  )

/**
 * The answer of `read` from its value, for a read begun at `started`. A `switch`, not `$match`: the fast path answers
 * every hit here, and a `$match` with its cases made per call measurably slowed a hit (bench/README.md).
 */
export const found = (read: CatalogRead, served: CatalogAnswer, started: number): ReadAnswer => {
  switch (read._tag) {
    case "Product":
      return productFound(served, started)
    case "Page":
      return pageFound(served, read.offset, read.limit, started)
  }
}

/** The answer of `read`, answered by `answer` (what a batch handed over, or the read alone). */
export const by = (read: CatalogRead, answer: BatchAnswer, started: number): Effect.Effect<ReadAnswer> =>
  CatalogRead.$match(read, {
    Product: () => productBy(answer, started),
    Page: ({ limit, offset }) => pageBy(answer, offset, limit, started)
  })

/** The limit a page is read with: the one asked for, at most the contract's maximum. */
export const pageLimit = (requested: number) => Math.min(requested, maxLimit)

/** GET /api/v1/products */
export const page = (products: ProductService, offset: number, requestedLimit: number): Effect.Effect<ReadAnswer> => {
  const started = performance.now()
  const limit = pageLimit(requestedLimit)
  return pageBy(products.list(offset, limit), offset, limit, started)
}
