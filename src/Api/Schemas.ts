import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"
import { exampleProduct, Product, ProductIdFromString, Timestamp } from "../Domain/Product.js"

// The bodies and parameters of the contract's operations, with the examples the document shows.

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

export const IdPath = Schema.Struct({ id: ProductIdFromString })

// `Schema.Int` carries the identifier "Int", which the document would show as a component of its own (a generator makes
// a `type Int = number` of it): the same rule without the name.
const Integer = Schema.Number.pipe(Schema.int())
const NonNegativeInt = Integer.pipe(Schema.nonNegative())
const DurationMs = Schema.Number.pipe(Schema.nonNegative()).annotations({
  description: "Time the service spent on the request, in milliseconds (with fractions)"
})
const FromCache = Schema.Boolean.annotations({ description: "Whether the answer came from the cache" })

const example = Product.make(exampleProduct)

export const ProductRead = Schema.Struct({
  product: Product,
  from_cache: FromCache,
  duration_ms: DurationMs
}).annotations({
  identifier: "ProductRead",
  examples: [{ product: example, from_cache: true, duration_ms: 0.412 }]
})
export const ProductPageRead = Schema.Struct({
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
export const ProductCreated = written("ProductCreated", "Product created successfully", 201)
export const ProductUpdated = written("ProductUpdated", "Product updated successfully, cache invalidated", 200)
export const ProductDeleted = Schema.Struct({
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
export const zeroStats = { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0, hit_rate: 0, total_gets: 0, stale: 0 }

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
export const Health = healthBody("Health", ["healthy", "degraded"], "up", {
  status: 200,
  description: "The database answers; `degraded` when the cache is down or writes are held up"
})
export const Unhealthy = healthBody("Unhealthy", ["unhealthy"], "down", {
  status: 503,
  description: "The database cannot be read"
})
