import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { products, client, fresh, expectStats } from "./support/HttpClient.js"

// The cache seen through the API: the original's scenario, remembered absences, list pages invalidated by writes
// (on both databases, vitest.config.ts). Every test gets a fresh app, so the database is empty and the cache statistics start at zero.

describe("cache behaviour through the API", () => {
  it.live("the Go original's 'Testing the Cache' scenario, step by step", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const stats = () => Effect.map(api.get("/api/v1/cache/stats"), (reply) => reply.body)

        // 1. Create a product: it invalidates keys that do not exist yet, so nothing is counted.
        const product = yield* api.create({ name: "Laptop", price: 999.99, stock: 50, category: "Electronics" })
        expectStats(yield* stats(), { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })

        // 2. Get it twice: from the database (miss, then stored), then from the cache.
        const first = yield* api.get(`${products}/${product.id}`)
        const second = yield* api.get(`${products}/${product.id}`)
        expect([first.body.from_cache, second.body.from_cache]).toEqual([false, true])
        expect(second.body.product).toEqual(product)

        // 3. 1 miss, 1 hit (and the one entry stored).
        expectStats(yield* stats(), { hits: 1, misses: 1, sets: 1, deletes: 0, errors: 0 })

        // 4. Update: the cached entry is removed (one delete); no list page was cached.
        const updated = yield* api.put(`${products}/${product.id}`, { price: 899.99 })
        expect(updated.status).toBe(200)
        expectStats(yield* stats(), { hits: 1, misses: 1, sets: 1, deletes: 1, errors: 0 })

        // 5. Get again: from the database, with the new value.
        const third = yield* api.get(`${products}/${product.id}`)
        expect(third.body.from_cache).toBe(false)
        expect(third.headers.get("x-cache")).toBe("MISS")
        expect(third.body.product).toEqual(updated.body.product)
        expect(third.body.product.price).toBe(899.99)

        // 6. 2 misses, 1 hit; stored twice, deleted once.
        const final = yield* stats()
        expectStats(final, { hits: 1, misses: 2, sets: 2, deletes: 1, errors: 0 })
        expect(final.cache_stats.hit_rate).toBeCloseTo(1 / 3, 12)
      })
    )
  )

  it.live("an absent product is remembered briefly: the second 404 is a hit; creating it ends that at once", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        expect((yield* api.get(`${products}/1`)).status).toBe(404)
        expect((yield* api.get(`${products}/1`)).status).toBe(404)
        const stats = yield* api.get("/api/v1/cache/stats")
        // The remembered "not found" is bookkeeping, not a product entry: it is not counted as a set.
        expectStats(stats.body, { hits: 1, misses: 1, sets: 0, deletes: 0, errors: 0 })
        const created = yield* api.create({ name: "Now here", price: 1 })
        expect(created.id).toBe(1)
        const read = yield* api.get(`${products}/1`)
        expect(read.status).toBe(200)
        expect(read.body.product).toEqual(created)
      })
    )
  )

  it.live("writes invalidate cached list pages: create, update and delete are visible on the next read", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const a = yield* api.create({ name: "A", price: 1 })

        const cold = yield* api.get(products)
        expect(cold.body).toMatchObject({ products: [a], total: 1, from_cache: false })
        const warm = yield* api.get(products)
        expect(warm.body).toMatchObject({ products: [a], total: 1, from_cache: true })
        expect(warm.headers.get("x-cache")).toBe("HIT")
        yield* api.get(`${products}?limit=5`) // a second cached page: every list key must go

        // Create: the next list read misses and shows the new product.
        const b = yield* api.create({ name: "B", price: 2 })
        const afterCreate = yield* api.get(products)
        expect(afterCreate.body).toMatchObject({ products: [a, b], total: 2, from_cache: false })
        expect(afterCreate.headers.get("x-cache")).toBe("MISS")
        const otherPage = yield* api.get(`${products}?limit=5`)
        expect(otherPage.body).toMatchObject({ products: [a, b], total: 2, from_cache: false })
        expectStats((yield* api.get("/api/v1/cache/stats")).body, {
          hits: 1,
          misses: 4,
          sets: 4,
          deletes: 2,
          errors: 0
        })

        // Update: the list shows the new value.
        expect((yield* api.get(products)).body.from_cache).toBe(true)
        const updated = yield* api.put(`${products}/${a.id}`, { name: "A2" })
        const afterUpdate = yield* api.get(products)
        expect(afterUpdate.body).toMatchObject({ products: [updated.body.product, b], total: 2, from_cache: false })
        expect(afterUpdate.body.products[0].name).toBe("A2")

        // Delete: the list no longer has it.
        expect((yield* api.get(products)).body.from_cache).toBe(true)
        const removed = yield* api.del(`${products}/${b.id}`)
        expect(removed.status).toBe(200)
        const afterDelete = yield* api.get(products)
        expect(afterDelete.body).toMatchObject({ products: [updated.body.product], total: 1, from_cache: false })
        const again = yield* api.get(products)
        expect(again.body).toMatchObject({ products: [updated.body.product], total: 1, from_cache: true })
      })
    )
  )
})
