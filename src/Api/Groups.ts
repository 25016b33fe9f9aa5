import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { CreateProduct, Timestamp, UpdateProduct } from "../Domain/Product.js"
import * as ApiDocument from "./Document.js"
import { InvalidRequest, NotFound, RequireJson, RequireNoBody, Unavailable } from "./Errors.js"
import {
  CacheStatsBody,
  Health,
  IdPath,
  ListParams,
  ProductCreated,
  ProductDeleted,
  ProductPageRead,
  ProductRead,
  ProductUpdated,
  Unhealthy,
  zeroStats
} from "./Schemas.js"

// The operations, one group per part of the service; Api.ts puts them together.

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
