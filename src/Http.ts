import { HttpApiBuilder, HttpApiSwagger, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { Clock, Effect, Layer } from "effect"
import { Api, defaultLimit, InternalError, maxLimit, NotFound, Unavailable } from "./Api.js"
import * as AppConfig from "./AppConfig.js"
import { Cache } from "./Cache.js"
import { CacheStats } from "./CacheStats.js"
import type { CacheStatsSnapshot } from "./CacheStats.js"
import { Database } from "./Database.js"
import type { ProductId } from "./Domain/Product.js"
import { ContractLive, RequireJsonLive } from "./HttpContract.js"
import { ProductRepo } from "./ProductRepo.js"
import * as PrometheusText from "./PrometheusText.js"
import { ProductService } from "./ProductService.js"

// Responses are written as JSON text here rather than encoded by the success schemas: a cache hit is served as the
// bytes Redis holds, and the field order is the contract's. The schemas in Api.ts still describe them for OpenAPI.

const json = (body: string, status = 200, headers?: Record<string, string>) =>
  HttpServerResponse.text(
    body,
    headers === undefined
      ? { status, contentType: "application/json" }
      : {
          status,
          contentType: "application/json",
          headers
        }
  )

const elapsedSince = (started: number) => Math.round((performance.now() - started) * 1000) / 1000

const timestamp = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

const notFound = (error: { readonly id: ProductId }) =>
  Effect.fail(new NotFound({ message: `product ${error.id} not found` }))

const unavailable = (error: unknown) =>
  Effect.zipRight(
    Effect.logError("database failure", error),
    Effect.fail(new Unavailable({ message: "the database is unavailable, try again later" }))
  )

/** GET /api/v1/products/:id: served through the HttpApi route below, and straight from `fastGet` on the hot path. */
const getProduct = (products: ProductService, id: ProductId) => {
  const started = performance.now()
  return products.getById(id).pipe(
    Effect.map(({ fromCache, json: product }) =>
      json(`{"product":${product},"from_cache":${fromCache},"duration_ms":${elapsedSince(started)}}`, 200, {
        "x-cache": fromCache ? "HIT" : "MISS"
      })
    ),
    Effect.catchTags({ ProductNotFound: notFound, SqlError: unavailable })
  )
}

/** GET /api/v1/products: the cached page is `{"products":[...],"total":N}`, extended in place instead of parsed. */
const listProducts = (products: ProductService, offset: number, requestedLimit: number) => {
  const started = performance.now()
  const limit = Math.min(requestedLimit, maxLimit)
  return products.list(offset, limit).pipe(
    Effect.map(({ fromCache, json: page }) =>
      json(
        `${page.slice(0, -1)},"offset":${offset},"limit":${limit},"from_cache":${fromCache},"duration_ms":${elapsedSince(started)}}`,
        200,
        { "x-cache": fromCache ? "HIT" : "MISS" }
      )
    ),
    Effect.catchTags({ SqlError: unavailable })
  )
}

// Only canonical spellings; anything else (leading zeros, too long, other parameters or order, a trailing slash)
// takes the full route, whose answers these match.
const canonicalGet = /^\/api\/v1\/products\/([1-9][0-9]{0,15})$/
const canonicalList = /^\/api\/v1\/products(?:\?offset=(0|[1-9][0-9]{0,14})&limit=([1-9][0-9]{0,14}))?$/

/**
 * The hot path: a well-formed GET by id or of a list page is answered before the router, with the same handler and
 * the same answers, but without route matching, schema decoding and the error-shaping middleware a well-formed
 * request never needs. Measured: the router and HttpApi's per-request work were about a third of a cache hit's CPU.
 */
export const fastGet = Effect.map(
  ProductService,
  (products) =>
    <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        if (request.method !== "GET") return app
        const byId = canonicalGet.exec(request.url)
        if (byId !== null) {
          const id = Number(byId[1])
          if (!(id <= Number.MAX_SAFE_INTEGER)) return app
          return getProduct(products, id as ProductId).pipe(
            Effect.catchAll((error) =>
              Effect.succeed(HttpServerResponse.unsafeJson(error, { status: error instanceof NotFound ? 404 : 503 }))
            )
          )
        }
        const page = canonicalList.exec(request.url)
        if (page === null) return app
        return listProducts(
          products,
          page[1] === undefined ? 0 : Number(page[1]),
          Number(page[2] ?? defaultLimit)
        ).pipe(Effect.catchAll((error) => Effect.succeed(HttpServerResponse.unsafeJson(error, { status: 503 }))))
      })
)

const ProductsLive = HttpApiBuilder.group(Api, "products", (handlers) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    return handlers
      .handle("get", ({ path }) => getProduct(products, path.id))
      .handle("list", ({ urlParams }) => listProducts(products, urlParams.offset, urlParams.limit))
      .handle("create", ({ payload }) =>
        products.create(payload).pipe(
          Effect.map((product) =>
            json(JSON.stringify({ message: "Product created successfully", product }), 201, {
              location: `/api/v1/products/${product.id}`
            })
          ),
          Effect.catchTags({ SqlError: unavailable })
        )
      )
      .handle("update", ({ path, payload }) =>
        products.update(path.id, payload).pipe(
          Effect.map((product) =>
            json(JSON.stringify({ message: "Product updated successfully, cache invalidated", product }))
          ),
          Effect.catchTags({ ProductNotFound: notFound, SqlError: unavailable })
        )
      )
      .handle("remove", ({ path }) =>
        products
          .remove(path.id)
          .pipe(
            Effect.as(json(JSON.stringify({ message: "Product deleted successfully, cache invalidated" }))),
            Effect.catchTags({ ProductNotFound: notFound, SqlError: unavailable })
          )
      )
  })
)

const statsBody = (stats: CacheStatsSnapshot) => ({
  hits: stats.hits,
  misses: stats.misses,
  sets: stats.sets,
  deletes: stats.deletes,
  errors: stats.errors,
  hit_rate: stats.hit_rate,
  total_gets: stats.total_gets
})

const CacheLive = HttpApiBuilder.group(Api, "cache", (handlers) =>
  Effect.gen(function* () {
    const stats = yield* CacheStats
    return handlers
      .handle("stats", () =>
        Effect.map(Effect.zip(stats.snapshot, timestamp), ([snapshot, at]) =>
          json(JSON.stringify({ cache_stats: statsBody(snapshot), timestamp: at }))
        )
      )
      .handle("reset", () =>
        Effect.map(Effect.zip(stats.reset, timestamp), ([snapshot, at]) =>
          json(JSON.stringify({ message: "Cache statistics reset", cache_stats: statsBody(snapshot), timestamp: at }))
        )
      )
  })
)

const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function* () {
    const cache = yield* Cache
    const repo = yield* ProductRepo
    const database = yield* Database
    const service = yield* AppConfig.serviceName
    const cacheTimeout = yield* AppConfig.cacheTimeout
    // Both checks are bounded, so /health answers promptly even while Redis hangs.
    const up = <E>(check: Effect.Effect<void, E>) =>
      check.pipe(
        Effect.timeout(cacheTimeout),
        Effect.as("up" as const),
        Effect.orElseSucceed(() => "down" as const)
      )
    // Writes held up by another process's lock, or failing (a full disk), while the products can still be read: the
    // database is "up" (the contract's "down" means 503, and an orchestrator would restart an instance that cannot
    // help it), the answer is "degraded", and `database_writes` says why.
    return handlers.handle("health", () =>
      Effect.all([up(repo.ping), up(cache.ping), database.writes, timestamp], { concurrency: 2 }).pipe(
        Effect.map(([reads, cacheCheck, writes, at]) => {
          const status =
            reads === "down" ? "unhealthy" : cacheCheck === "down" || writes !== "ok" ? "degraded" : "healthy"
          return json(
            JSON.stringify({
              service,
              status,
              checks: { database: reads, cache: cacheCheck },
              timestamp: at,
              ...(writes === "ok" ? {} : { database_writes: writes })
            }),
            reads === "down" ? 503 : 200
          )
        })
      )
    )
  })
)

const MetricsLive = HttpApiBuilder.group(Api, "metrics", (handlers) =>
  handlers.handle("metrics", () =>
    Effect.map(PrometheusText.scrape, (body) =>
      HttpServerResponse.text(body, { contentType: PrometheusText.contentType })
    )
  )
)

/** Whatever escaped everything else: logged in full, answered as a bare 500 that reveals nothing. */
export const internalError = HttpServerResponse.unsafeJson(
  new InternalError({ message: "an unexpected error occurred" }),
  { status: 500 }
)

/**
 * The whole API: endpoints, the contract's error shapes, and the OpenAPI document with Swagger UI at /docs.
 * It needs the services (ProductService, ProductRepo, CacheStats, Cache), which main.ts or a test provides.
 */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([ProductsLive, CacheLive, HealthLive, MetricsLive]),
  Layer.provide(RequireJsonLive)
)

/** Served beside the HttpApi's own endpoints. */
export const docsPaths = { ui: "/docs", document: "/docs/openapi.json" } as const

export const DocsLive = Layer.mergeAll(
  HttpApiSwagger.layer({ path: docsPaths.ui }),
  HttpApiBuilder.middlewareOpenApi({ path: docsPaths.document })
).pipe(Layer.provide(ApiLive))

export const RoutesLive = Layer.mergeAll(ApiLive, DocsLive, ContractLive)
