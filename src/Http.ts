import { HttpApiBuilder, HttpApiSwagger, HttpServerResponse } from "@effect/platform"
import { Clock, Effect, Layer } from "effect"
import { Api, databaseUnavailable, productNotFound, unexpectedError } from "./Api.js"
import * as AppConfig from "./AppConfig.js"
import { CacheStats } from "./CacheStats.js"
import type { CacheStatsSnapshot } from "./CacheStats.js"
import type { ProductId } from "./Domain/Product.js"
import * as Dashboard from "./Dashboard.js"
import * as HealthCheck from "./HealthCheck.js"
import { ContractLive, RequireJsonLive } from "./HttpContract.js"
import * as PrometheusText from "./PrometheusText.js"
import { ProductService } from "./ProductService.js"
import * as ReadAnswers from "./ReadAnswers.js"

// Answers are JSON text written here rather than encoded by the success schemas, for the reasons ReadAnswers.ts
// gives; the schemas in Api.ts still describe them for OpenAPI.

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

const readResponse = (answer: ReadAnswers.ReadAnswer) =>
  json(
    answer.body,
    answer.status,
    answer.xCache === undefined
      ? undefined
      : answer.age === undefined
        ? { "x-cache": answer.xCache }
        : { "x-cache": answer.xCache, age: String(answer.age) }
  )

const timestamp = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

const notFound = (error: { readonly id: ProductId }) => Effect.fail(productNotFound(error.id))

const unavailable = (error: unknown) =>
  Effect.zipRight(Effect.logError("database failure", error), Effect.fail(databaseUnavailable))

const ProductsLive = HttpApiBuilder.group(Api, "products", (handlers) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    return handlers
      .handle("get", ({ path }) =>
        ReadAnswers.product(products, path.id).pipe(Effect.tap(ReadAnswers.logFailure), Effect.map(readResponse))
      )
      .handle("list", ({ urlParams }) =>
        ReadAnswers.page(products, urlParams.offset, urlParams.limit).pipe(
          Effect.tap(ReadAnswers.logFailure),
          Effect.map(readResponse)
        )
      )
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
  total_gets: stats.total_gets,
  stale: stats.stale
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
    const check = yield* HealthCheck.make
    const service = yield* AppConfig.serviceName
    return handlers.handle("health", () =>
      Effect.map(Effect.zip(check, timestamp), ([health, at]) =>
        json(
          JSON.stringify({
            service,
            status: health.status,
            checks: { database: health.database, cache: health.cache },
            timestamp: at,
            ...(health.writes === "ok" ? {} : { database_writes: health.writes })
          }),
          health.database === "down" ? 503 : 200
        )
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
export const internalError = HttpServerResponse.unsafeJson(unexpectedError, { status: 500 })

/**
 * The whole API: endpoints, the contract's error shapes, and the OpenAPI document with Swagger UI at /docs.
 * It needs the services (ProductService, ProductRepo, CacheStats, Cache), which main.ts or a test provides.
 */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([ProductsLive, CacheLive, HealthLive, MetricsLive, Dashboard.FeedLive]),
  Layer.provide(RequireJsonLive)
)

/** Served beside the HttpApi's own endpoints. */
export const docsPaths = { ui: "/docs", document: "/docs/openapi.json" } as const

export const DocsLive = Layer.mergeAll(
  HttpApiSwagger.layer({ path: docsPaths.ui }),
  HttpApiBuilder.middlewareOpenApi({ path: docsPaths.document })
).pipe(Layer.provide(ApiLive))

export const RoutesLive = Layer.mergeAll(ApiLive, DocsLive, Dashboard.PageLive, ContractLive)
