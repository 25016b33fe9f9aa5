import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { CreateProduct, Product, ProductIdFromString, UpdateProduct } from "./Domain/Product.js"

// Errors a client sees: `{"error":"<code>","message":"..."}` exactly, so plain classes with a literal `error` field
// (a TaggedError would add `_tag` to the body).
const errorClass = <const Code extends string>(name: string, code: Code, status: number) =>
  Schema.Class<{ readonly error: Code; readonly message: string }>(name)(
    { error: Schema.tag(code), message: Schema.String },
    HttpApiSchema.annotations({ status, description: `${code} (${status})` })
  )

export class InvalidRequest extends errorClass("InvalidRequest", "invalid_request", 400) {}
export class NotFound extends errorClass("NotFound", "not_found", 404) {}
export class MethodNotAllowed extends errorClass("MethodNotAllowed", "method_not_allowed", 405) {}
export class PayloadTooLarge extends errorClass("PayloadTooLarge", "payload_too_large", 413) {}
export class UnsupportedMediaType extends errorClass("UnsupportedMediaType", "unsupported_media_type", 415) {}
export class InternalError extends errorClass("InternalError", "internal_error", 500) {}
export class Unavailable extends errorClass("Unavailable", "unavailable", 503) {}

/** Rejects a POST/PUT whose body is not `application/json` before the body is read. */
export class RequireJson extends HttpApiMiddleware.Tag<RequireJson>()("RequireJson", {
  failure: UnsupportedMediaType
}) {}

const integerParam = (name: string, minimum: number) =>
  Schema.String.pipe(
    Schema.pattern(/^[0-9]{1,15}$/, { message: () => `${name} must be an integer >= ${minimum}` }),
    Schema.compose(Schema.NumberFromString),
    Schema.filter((n) => n >= minimum || `${name} must be an integer >= ${minimum}`)
  )

export const defaultLimit = 20

export const ListParams = Schema.Struct({
  offset: Schema.optionalWith(integerParam("offset", 0), { default: () => 0 }),
  // Larger limits are lowered to 100 by the handler, not refused.
  limit: Schema.optionalWith(integerParam("limit", 1), { default: () => defaultLimit })
})

export const maxLimit = 100

const IdPath = Schema.Struct({ id: ProductIdFromString })

const ProductRead = Schema.Struct({ product: Product, from_cache: Schema.Boolean, duration_ms: Schema.Number })
const ProductPageRead = Schema.Struct({
  products: Schema.Array(Product),
  total: Schema.Int,
  offset: Schema.Int,
  limit: Schema.Int,
  from_cache: Schema.Boolean,
  duration_ms: Schema.Number
})
const ProductWritten = Schema.Struct({ message: Schema.String, product: Product })
const Message = Schema.Struct({ message: Schema.String })

export const CacheStatsBody = Schema.Struct({
  hits: Schema.Int,
  misses: Schema.Int,
  sets: Schema.Int,
  deletes: Schema.Int,
  errors: Schema.Int,
  hit_rate: Schema.Number,
  total_gets: Schema.Int
})

const Health = Schema.Struct({
  service: Schema.String,
  status: Schema.Literal("healthy", "degraded", "unhealthy"),
  checks: Schema.Struct({ database: Schema.Literal("up", "down"), cache: Schema.Literal("up", "down") }),
  timestamp: Schema.String,
  /** Only when recent writes were held up by another process's lock, or failed, while reads still work. */
  database_writes: Schema.optional(Schema.Literal("busy", "failing"))
})

export class ProductsApi extends HttpApiGroup.make("products")
  .add(HttpApiEndpoint.get("list", "/api/v1/products").setUrlParams(ListParams).addSuccess(ProductPageRead))
  .add(HttpApiEndpoint.get("get", "/api/v1/products/:id").setPath(IdPath).addSuccess(ProductRead).addError(NotFound))
  .add(
    HttpApiEndpoint.post("create", "/api/v1/products")
      .setPayload(CreateProduct)
      .addSuccess(ProductWritten, { status: 201 })
      .middleware(RequireJson)
  )
  .add(
    HttpApiEndpoint.put("update", "/api/v1/products/:id")
      .setPath(IdPath)
      .setPayload(UpdateProduct)
      .addSuccess(ProductWritten)
      .addError(NotFound)
      .middleware(RequireJson)
  )
  .add(HttpApiEndpoint.del("remove", "/api/v1/products/:id").setPath(IdPath).addSuccess(Message).addError(NotFound))
  .addError(Unavailable) {}

export class CacheApi extends HttpApiGroup.make("cache")
  .add(
    HttpApiEndpoint.get("stats", "/api/v1/cache/stats").addSuccess(
      Schema.Struct({ cache_stats: CacheStatsBody, timestamp: Schema.String })
    )
  )
  .add(
    HttpApiEndpoint.post("reset", "/api/v1/cache/stats/reset").addSuccess(
      Schema.Struct({ message: Schema.String, cache_stats: CacheStatsBody, timestamp: Schema.String })
    )
  ) {}

export class HealthApi extends HttpApiGroup.make("health").add(
  HttpApiEndpoint.get("health", "/health").addSuccess(Health).addError(Unavailable)
) {}

/** Prometheus scrapes this; the handler writes the text format itself (PrometheusText.ts). */
export class MetricsApi extends HttpApiGroup.make("metrics").add(
  HttpApiEndpoint.get("metrics", "/metrics").addSuccess(
    Schema.String.pipe(HttpApiSchema.withEncoding({ kind: "Text", contentType: "text/plain; version=0.0.4" }))
  )
) {}

/** The contract of `../shared/spec/API.md` as an HttpApi: routes, schemas, statuses and the OpenAPI document. */
export class Api extends HttpApi.make("catalog")
  .add(ProductsApi)
  .add(CacheApi)
  .add(HealthApi)
  .add(MetricsApi)
  // Answered by the contract middleware (Http.ts) rather than by an endpoint; declared so the document shows them.
  .addError(InvalidRequest)
  .addError(MethodNotAllowed)
  .addError(PayloadTooLarge)
  .addError(InternalError)
  .annotate(OpenApi.Title, "Product catalog with Redis cache-aside") {}
