import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  products,
  productKeys,
  client,
  fresh,
  expectJson,
  expectError,
  expectIsoBetween,
  expectDuration,
  expectStats
} from "./support/HttpClient.js"
import type { Product } from "./support/HttpClient.js"

// The contract of ../shared/spec/API.md over HTTP against the real app (in-memory cache, SQLite file or PostgreSQL
// database: vitest.config.ts runs this file on both): every endpoint's success answers. Every test gets a fresh app, so the database is empty and the cache statistics start at zero.

describe("success paths", () => {
  it.live("GET /health answers healthy with the contract's keys", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const reply = yield* api.get("/health")
        const after = Date.now()
        expect(reply.status).toBe(200)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["service", "status", "checks", "timestamp", "cache_topology"])
        expect(typeof reply.body.service).toBe("string")
        expect(reply.body.service.length).toBeGreaterThan(0)
        expect(reply.body.status).toBe("healthy")
        expect(reply.body.checks).toEqual({ database: "up", cache: "up" })
        expect(Object.keys(reply.body.checks)).toEqual(["database", "cache"])
        expect(reply.body.cache_topology).toBe("memory")
        expectIsoBetween(reply.body.timestamp, before, after)
      })
    )
  )

  it.live("POST creates: 201, message, Location, defaults, trimmed name, ISO UTC timestamps, key order", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const reply = yield* api.post(products, { name: "  Laptop  ", price: 999.99 })
        const after = Date.now()
        expect(reply.status).toBe(201)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["message", "product"])
        expect(reply.body.message).toBe("Product created successfully")
        const product = reply.body.product
        expect(Object.keys(product)).toEqual(productKeys)
        expect(Number.isInteger(product.id)).toBe(true)
        expect(product.id).toBeGreaterThan(0)
        expect(reply.headers.get("location")).toBe(`${products}/${product.id}`)
        expect(product).toMatchObject({ name: "Laptop", description: "", price: 999.99, stock: 0, category: "" })
        expectIsoBetween(product.created_at, before, after)
        expect(product.updated_at).toBe(product.created_at)

        // Every field given, at the rules' upper bounds.
        const full = {
          name: "n".repeat(255),
          description: "d".repeat(1000),
          price: 0.01,
          stock: 50,
          category: "c".repeat(100)
        }
        const second = yield* api.post(products, full)
        expect(second.status, second.text).toBe(201)
        expect(second.body.product).toMatchObject(full)
        expect(second.body.product.id).toBeGreaterThan(product.id)
        expect(second.headers.get("location")).toBe(`${products}/${second.body.product.id}`)

        // What was answered is what was stored.
        const stored = yield* api.get(`${products}/${product.id}`)
        expect(stored.body.product).toEqual(product)
      })
    )
  )

  it.live("POST accepts application/json with parameters and a body of exactly 1 MiB", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const charset = yield* api.request("POST", products, {
          json: { name: "A", price: 1 },
          headers: { "content-type": "application/json; charset=utf-8" }
        })
        expect(charset.status, charset.text).toBe(201)
        const upper = yield* api.request("POST", products, {
          json: { name: "B", price: 2 },
          headers: { "content-type": "Application/JSON" }
        })
        expect(upper.status, upper.text).toBe(201)
        const json = JSON.stringify({ name: "C", price: 3 })
        const padded = json + " ".repeat(1024 * 1024 - json.length)
        expect(Buffer.byteLength(padded)).toBe(1024 * 1024)
        const limit = yield* api.request("POST", products, {
          body: padded,
          headers: { "content-type": "application/json" }
        })
        expect(limit.status, limit.text).toBe(201)
        expect(limit.body.product.name).toBe("C")
      })
    )
  )

  it.live("GET by id: from_cache false then true, X-Cache MISS then HIT, duration_ms a number", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const product = yield* api.create({ name: "Mouse", price: 19.5, stock: 3, category: "Peripherals" })
        const durations: Array<number> = []
        const first = yield* api.get(`${products}/${product.id}`)
        expect(first.status).toBe(200)
        expectJson(first)
        expect(Object.keys(first.body)).toEqual(["product", "from_cache", "duration_ms"])
        expect(first.body.product).toEqual(product)
        expect(Object.keys(first.body.product)).toEqual(productKeys)
        expect(first.body.from_cache).toBe(false)
        expect(first.headers.get("x-cache")).toBe("MISS")
        expectDuration(first.body.duration_ms)
        durations.push(first.body.duration_ms)
        for (let i = 0; i < 3; i++) {
          const again = yield* api.get(`${products}/${product.id}`)
          expect(again.status).toBe(200)
          expect(Object.keys(again.body)).toEqual(["product", "from_cache", "duration_ms"])
          expect(again.body.product).toEqual(product)
          expect(Object.keys(again.body.product)).toEqual(productKeys)
          expect(again.body.from_cache).toBe(true)
          expect(again.headers.get("x-cache")).toBe("HIT")
          expectDuration(again.body.duration_ms)
          durations.push(again.body.duration_ms)
        }
        // Milliseconds with fractions, not whole milliseconds (a hit takes well under 1 ms).
        expect(
          durations.some((d) => !Number.isInteger(d)),
          String(durations)
        ).toBe(true)
      })
    )
  )

  it.live("GET list: ordered by id, total, default and explicit offset/limit, limit capped at 100, cached", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const empty = yield* api.get(products)
        expect(empty.status).toBe(200)
        expect(empty.body).toMatchObject({ products: [], total: 0, offset: 0, limit: 20, from_cache: false })

        const created: Array<Product> = []
        for (const name of ["c", "a", "b"]) created.push(yield* api.create({ name, price: 1 }))

        const page = yield* api.get(products)
        expect(page.status).toBe(200)
        expectJson(page)
        expect(Object.keys(page.body)).toEqual(["products", "total", "offset", "limit", "from_cache", "duration_ms"])
        expect(page.body.products).toEqual(created)
        expect(page.body.products.map((p: Product) => p.id)).toEqual(
          [...created.map((p) => p.id)].sort((a, b) => a - b)
        )
        for (const p of page.body.products) expect(Object.keys(p)).toEqual(productKeys)
        expect(page.body).toMatchObject({ total: 3, offset: 0, limit: 20, from_cache: false })
        expect(page.headers.get("x-cache")).toBe("MISS")
        expectDuration(page.body.duration_ms)

        const repeat = yield* api.get(products)
        expect(repeat.body).toMatchObject({ products: created, total: 3, offset: 0, limit: 20, from_cache: true })
        expect(repeat.headers.get("x-cache")).toBe("HIT")
        expectDuration(repeat.body.duration_ms)

        const window = yield* api.get(`${products}?offset=1&limit=1`)
        expect(window.body).toMatchObject({ products: [created[1]], total: 3, offset: 1, limit: 1, from_cache: false })
        const tail = yield* api.get(`${products}?offset=2&limit=5`)
        expect(tail.body).toMatchObject({ products: [created[2]], total: 3, offset: 2, limit: 5 })
        const beyond = yield* api.get(`${products}?offset=10`)
        expect(beyond.body).toMatchObject({ products: [], total: 3, offset: 10, limit: 20 })

        // A limit above 100 is lowered to 100, in the answer and in the cache key.
        const big = yield* api.get(`${products}?limit=500`)
        expect(big.status).toBe(200)
        expect(big.body).toMatchObject({ products: created, total: 3, offset: 0, limit: 100, from_cache: false })
        const hundred = yield* api.get(`${products}?limit=100`)
        expect(hundred.body).toMatchObject({ limit: 100, from_cache: true })
        expect(hundred.headers.get("x-cache")).toBe("HIT")
        const hundredOne = yield* api.get(`${products}?limit=101`)
        expect(hundredOne.body).toMatchObject({ limit: 100, from_cache: true })
      })
    )
  )

  it.live("PUT updates only the given fields and answers the product as stored", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const original = yield* api.create({
          name: "Desk",
          description: "Oak",
          price: 250,
          stock: 4,
          category: "Furniture"
        })
        yield* Effect.sleep("5 millis")

        const before = Date.now()
        const reply = yield* api.put(`${products}/${original.id}`, { stock: 7 })
        const after = Date.now()
        expect(reply.status, reply.text).toBe(200)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["message", "product"])
        expect(reply.body.message).toBe("Product updated successfully, cache invalidated")
        const updated = reply.body.product
        expect(Object.keys(updated)).toEqual(productKeys)
        expect(updated).toEqual({ ...original, stock: 7, updated_at: updated.updated_at })
        expect(updated.created_at).toBe(original.created_at)
        expectIsoBetween(updated.updated_at, before, after)
        expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(updated.created_at))

        const stored = yield* api.get(`${products}/${original.id}`)
        expect(stored.body).toMatchObject({ product: updated, from_cache: false })

        const renamed = yield* api.put(`${products}/${original.id}`, { name: "  Standing desk  " })
        expect(renamed.status).toBe(200)
        expect(renamed.body.product).toEqual({
          ...updated,
          name: "Standing desk",
          updated_at: renamed.body.product.updated_at
        })

        const everything = { name: "Table", description: "", price: 99.5, stock: 0, category: "" }
        const all = yield* api.put(`${products}/${original.id}`, everything)
        expect(all.status).toBe(200)
        expect(all.body.product).toEqual({
          ...everything,
          id: original.id,
          created_at: original.created_at,
          updated_at: all.body.product.updated_at
        })
        const final = yield* api.get(`${products}/${original.id}`)
        expect(final.body.product).toEqual(all.body.product)
        const list = yield* api.get(products)
        expect(list.body.products).toEqual([all.body.product])
      })
    )
  )

  it.live("DELETE answers 200 once, then the product is gone (GET, PUT, DELETE 404)", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const keep = yield* api.create({ name: "Keep", price: 1 })
        const gone = yield* api.create({ name: "Gone", price: 2 })
        yield* api.get(`${products}/${gone.id}`) // cached, so the delete must invalidate it
        const reply = yield* api.del(`${products}/${gone.id}`)
        expect(reply.status).toBe(200)
        expectJson(reply)
        expect(reply.body).toEqual({ message: "Product deleted successfully, cache invalidated" })
        expectError(yield* api.get(`${products}/${gone.id}`), 404, "not_found", "GET after DELETE")
        expectError(yield* api.del(`${products}/${gone.id}`), 404, "not_found", "DELETE again")
        expectError(yield* api.put(`${products}/${gone.id}`, { stock: 1 }), 404, "not_found", "PUT after DELETE")
        const list = yield* api.get(products)
        expect(list.body).toMatchObject({ products: [keep], total: 1 })
        // Ids are not handed out again.
        const next = yield* api.create({ name: "Next", price: 3 })
        expect(next.id).toBeGreaterThan(gone.id)
      })
    )
  )

  it.live("cache stats: exact shape, hit_rate a fraction; reset zeroes every counter", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const initial = yield* api.get("/api/v1/cache/stats")
        expect(initial.status).toBe(200)
        expectJson(initial)
        expect(Object.keys(initial.body)).toEqual(["cache_stats", "timestamp"])
        expectStats(initial.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        expectIsoBetween(initial.body.timestamp, before, Date.now())

        const product = yield* api.create({ name: "P", price: 1 })
        for (let i = 0; i < 4; i++) yield* api.get(`${products}/${product.id}`) // 1 miss + set, 3 hits
        const stats = yield* api.get("/api/v1/cache/stats")
        expectStats(stats.body, { hits: 3, misses: 1, sets: 1, deletes: 0, errors: 0 })
        expect(stats.body.cache_stats.hit_rate).toBe(0.75)

        const resetAt = Date.now()
        const reset = yield* api.request("POST", "/api/v1/cache/stats/reset")
        expect(reset.status).toBe(200)
        expectJson(reset)
        expect(Object.keys(reset.body)).toEqual(["message", "cache_stats", "timestamp"])
        expect(reset.body.message).toBe("Cache statistics reset")
        expectStats(reset.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        expectIsoBetween(reset.body.timestamp, resetAt, Date.now())

        const afterReset = yield* api.get("/api/v1/cache/stats")
        expectStats(afterReset.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        // Counting goes on from zero; the cache itself was not emptied by the reset.
        yield* api.get(`${products}/${product.id}`)
        const counting = yield* api.get("/api/v1/cache/stats")
        expectStats(counting.body, { hits: 1, misses: 0, sets: 0, deletes: 0, errors: 0 })
      })
    )
  )
})
