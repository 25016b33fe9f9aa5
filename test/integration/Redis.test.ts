import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import parsePrometheus from "parse-prometheus-text-format"
import type { ProductId } from "../../src/Domain/Product.js"
import { ProductService } from "../../src/ProductService.js"
import { create, withApp } from "../support/RedisApp.js"
import * as RedisServer from "../support/RedisServer.js"
import { App, eventually, replyBoundMillis, timed } from "../support/TestApp.js"

// The real app on a real Redis (our own redis-server, never the machine's) and a real SQLite file: keys, TTLs,
// invalidation and a frozen or stopped Redis.

// Above the reply margin, so that a request that waits on Redis once more than it should cannot pass.
const cacheTimeout = 800

const keys = (server: RedisServer.RedisServer, pattern: string) =>
  Effect.map(server.command("KEYS", pattern), (found) => [...(found as Array<string>)].sort())

/** Database loads by id so far (single-row and batched queries), from /metrics. */
const loadQueries = Effect.flatMap(App, (app) =>
  Effect.map(app.get("/metrics"), (reply) => {
    const family = parsePrometheus(reply.text).find((family) => family.name === "db_queries_total")
    const count = (query: string) =>
      Number(
        family?.metrics.find((metric) => metric.labels?.query === query && metric.labels?.outcome === "ok")?.value ?? 0
      )
    return { findById: count("findById"), findByIds: count("findByIds") }
  })
)

describe("with a real Redis", () => {
  it.scopedLive("a burst of misses for distinct ids loads in one IN query on SQLite, through the real Redis", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const products = yield* ProductService
        const created = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => create(`P${i}`, i + 1)
        )
        yield* server.command("FLUSHDB")
        const before = yield* loadQueries
        // Issued together, as requests arriving in one turn of the event loop are: their lookups go to Redis in one
        // pipeline, the misses come back together, and their loads wait for the end of that turn.
        const reads = yield* Effect.all(
          created.map((product) => products.getById(product.id as ProductId)),
          { concurrency: "unbounded" }
        )
        const after = yield* loadQueries
        for (const [i, read] of reads.entries()) {
          expect(read.fromCache).toBe(false)
          expect(JSON.parse(read.json)).toEqual(created[i])
        }
        expect({ findById: after.findById - before.findById, findByIds: after.findByIds - before.findByIds }).toEqual({
          findById: 0,
          findByIds: 1
        })
      })
    )
  )

  it.scopedLive("reads fill product:id:<id> and product:list:<offset>:<limit> with CACHE_TTL", () =>
    withApp(
      (server) =>
        Effect.gen(function* () {
          const app = yield* App
          const product = yield* create("Laptop")
          yield* app.get(`/api/v1/products/${product.id}`)
          yield* app.get("/api/v1/products?offset=0&limit=500")
          expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${product.id}`])
          expect(yield* keys(server, "product:list:*")).toEqual(["product:list:0:100"])
          const cached = JSON.parse((yield* server.command("GET", `product:id:${product.id}`)) as string)
          expect(cached).toEqual(product)
          const page = JSON.parse((yield* server.command("GET", "product:list:0:100")) as string)
          expect(page).toEqual({ products: [product], total: 1 })
          for (const key of [`product:id:${product.id}`, "product:list:0:100"]) {
            const pttl = Number(yield* server.command("PTTL", key))
            expect(pttl).toBeGreaterThan(80_000)
            expect(pttl).toBeLessThanOrEqual(90_000)
          }
          const hit = yield* app.get(`/api/v1/products/${product.id}`)
          expect(hit.body.from_cache).toBe(true)
          expect(hit.body.product).toEqual(product)
        }),
      { CACHE_TTL: "1m30s" }
    )
  )

  it.scopedLive("CACHE_PREFIX names every key", () =>
    withApp(
      (server) =>
        Effect.gen(function* () {
          const app = yield* App
          const product = yield* create("Laptop")
          yield* app.get(`/api/v1/products/${product.id}`)
          yield* app.get("/api/v1/products")
          expect(yield* keys(server, "shop:id:*")).toEqual([`shop:id:${product.id}`])
          expect(yield* keys(server, "shop:list:*")).toEqual(["shop:list:0:20"])
          expect(yield* keys(server, "product:*")).toEqual([])
        }),
      { CACHE_PREFIX: "shop:" }
    )
  )

  it.scopedLive("writes remove the product's key and every list key from Redis", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const a = yield* create("A")
        const b = yield* create("B")
        const warm = Effect.all([
          app.get(`/api/v1/products/${a.id}`),
          app.get(`/api/v1/products/${b.id}`),
          app.get("/api/v1/products"),
          app.get("/api/v1/products?offset=1&limit=1")
        ])
        yield* warm
        expect((yield* keys(server, "product:list:*")).length).toBe(2)

        yield* app.request("PUT", `/api/v1/products/${a.id}`, { json: { price: 5 } })
        expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${b.id}`])
        expect(yield* keys(server, "product:list:*")).toEqual([])

        yield* warm
        yield* create("C")
        expect(yield* keys(server, "product:list:*")).toEqual([])
        expect((yield* keys(server, "product:id:*")).length).toBe(2)

        yield* warm
        yield* app.request("DELETE", `/api/v1/products/${b.id}`)
        expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${a.id}`])
        expect(yield* keys(server, "product:list:*")).toEqual([])
        const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
        expect(stats.errors).toBe(0)
        expect(stats.deletes).toBe(3 + 2 + 3)
      })
    )
  )

  it.scopedLive(
    "Redis killed mid-test: answers stay correct, errors are counted, health is degraded; it returns by itself",
    () =>
      withApp(
        (server) =>
          Effect.gen(function* () {
            const app = yield* App
            const product = yield* create("Laptop", 100)
            yield* app.get(`/api/v1/products/${product.id}`)
            expect((yield* app.get(`/api/v1/products/${product.id}`)).body.from_cache).toBe(true)
            yield* app.request("POST", "/api/v1/cache/stats/reset")

            yield* server.stop
            const read = yield* timed(app.get(`/api/v1/products/${product.id}`))
            expect(read.reply.status).toBe(200)
            expect(read.reply.body.from_cache).toBe(false)
            expect(read.reply.headers.get("x-cache")).toBe("MISS")
            const update = yield* timed(app.request("PUT", `/api/v1/products/${product.id}`, { json: { price: 50 } }))
            expect(update.reply.body.product.price).toBe(50)
            const reread = yield* timed(app.get(`/api/v1/products/${product.id}`))
            expect(reread.reply.body.product.price).toBe(50)
            const list = yield* timed(app.get("/api/v1/products"))
            expect(list.reply.body.products[0].price).toBe(50)
            // A dead Redis fails at once; this checks no request waited on it more than its commands' timeouts allow.
            for (const [label, { millis }, commands] of [
              ["read", read, 1],
              ["update", update, 2],
              ["read after update", reread, 1],
              ["list", list, 1]
            ] as const) {
              expect(millis, label).toBeLessThan(replyBoundMillis(cacheTimeout, commands))
            }
            const health = yield* app.get("/health")
            expect(health.status).toBe(200)
            expect(health.body.status).toBe("degraded")
            expect(health.body.checks).toEqual({ database: "up", cache: "down" })
            const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
            expect(stats.hits + stats.misses).toBe(0)
            // One per cache operation that could not be done: the read's lookup, the update's two invalidations, and
            // for each later read the pending invalidation it could not apply (the read then bypasses the cache).
            expect(stats.errors).toBe(1 + 2 + 1 + 1)

            // Redis comes back empty (no persistence here). The service reconnects on its own and caches again.
            yield* server.start
            expect(yield* eventually(Effect.map(app.get("/health"), (reply) => reply.body.status === "healthy"))).toBe(
              true
            )
            const first = yield* app.get(`/api/v1/products/${product.id}`)
            const second = yield* app.get(`/api/v1/products/${product.id}`)
            expect([first.body.from_cache, second.body.from_cache]).toEqual([false, true])
            expect(second.body.product.price).toBe(50)
          }),
        { CACHE_TIMEOUT: `${cacheTimeout}ms` }
      )
  )

  it.scopedLive(
    "a frozen Redis costs a request at most CACHE_TIMEOUT; after five, the circuit opens and skips it",
    () =>
      withApp(
        (server) =>
          Effect.gen(function* () {
            const app = yield* App
            const product = yield* create("Laptop")
            yield* app.request("POST", "/api/v1/cache/stats/reset")
            const skipped = Effect.map(app.get("/metrics"), (reply) =>
              Number(/cache_operations_total\{operation="lookup",outcome="skipped"\} (\d+)/.exec(reply.text)?.[1] ?? 0)
            )
            const skippedBefore = yield* skipped
            yield* server.freeze
            for (let i = 0; i < 30; i++) {
              const { millis, reply } = yield* timed(app.get(`/api/v1/products/${product.id}`))
              expect(reply.status).toBe(200)
              expect(reply.body.product.name).toBe("Laptop")
              expect(millis, `read ${i + 1}`).toBeLessThan(replyBoundMillis(cacheTimeout, 1))
            }
            const health = yield* timed(app.get("/health"))
            yield* server.thaw
            expect(health.reply.body.status).toBe("degraded")
            expect(health.millis).toBeLessThan(replyBoundMillis(cacheTimeout, 1))
            // Without the breaker every read would wait the full timeout; with it, Redis is skipped after the first five.
            expect((yield* skipped) - skippedBefore).toBeGreaterThanOrEqual(20)
            const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
            expect(stats.errors).toBe(30)
            expect(stats.hits + stats.misses).toBe(0)
          }),
        { CACHE_TIMEOUT: `${cacheTimeout}ms` }
      )
  )
})
