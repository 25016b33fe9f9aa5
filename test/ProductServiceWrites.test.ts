import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as CacheKeys from "../src/Cache/Keys.js"
import { laptop, setup, counts } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: writes and their invalidations, a cache that fails every call, races and
// outages.

describe("ProductService writes", () => {
  it.scoped("update invalidates the product's key and every list page; the next reads load the new value", () =>
    Effect.gen(function* () {
      const { service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* service.list(0, 20)
      yield* service.list(0, 10)
      const before = yield* stats()
      const updated = yield* service.update(product.id, { price: 899.99 })
      expect(updated.price).toBe(899.99)
      expect((yield* stats()).deletes - before.deletes).toBe(3)
      const read = yield* service.getById(product.id)
      expect(read).toEqual({ json: JSON.stringify(updated), fromCache: false })
      const page = yield* service.list(0, 20)
      expect(page.fromCache).toBe(false)
      expect(JSON.parse(page.json).products[0].price).toBe(899.99)
    })
  )

  it.scoped("create invalidates every list page (and the new product's key)", () =>
    Effect.gen(function* () {
      const { service, stats } = yield* setup()
      yield* service.create(laptop)
      yield* service.list(0, 20)
      const before = yield* stats()
      const created = yield* service.create({ ...laptop, name: "Mouse" })
      expect((yield* stats()).deletes - before.deletes).toBe(1)
      const page = yield* service.list(0, 20)
      expect(page.fromCache).toBe(false)
      expect(JSON.parse(page.json).products.map((p: { id: number }) => p.id)).toContain(created.id)
    })
  )

  it.scoped("delete invalidates; the product is then not found, and deleting again changes nothing", () =>
    Effect.gen(function* () {
      const { service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* service.remove(product.id)
      const afterDelete = yield* stats()
      expect(afterDelete.deletes).toBe(1)
      expect((yield* Effect.flip(service.getById(product.id)))._tag).toBe("ProductNotFound")
      expect((yield* Effect.flip(service.remove(product.id)))._tag).toBe("ProductNotFound")
      expect((yield* Effect.flip(service.update(product.id, { stock: 1 })))._tag).toBe("ProductNotFound")
      expect((yield* stats()).deletes).toBe(afterDelete.deletes)
    })
  )
})

describe("ProductService with a cache that fails every call", () => {
  it.scoped("every operation answers from the repository, counting one error per cache operation", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup({ cacheDown: true })
      const product = yield* service.create(laptop) // 2 errors: id key, list keys
      expect(yield* service.getById(product.id)).toEqual({
        json: JSON.stringify(product),
        fromCache: false,
        cacheFailed: true
      })
      expect(yield* service.getById(product.id)).toEqual({
        json: JSON.stringify(product),
        fromCache: false,
        cacheFailed: true
      })
      expect(JSON.parse((yield* service.list(0, 20)).json)).toEqual({ products: [product], total: 1 })
      const updated = yield* service.update(product.id, { name: "Laptop 2" }) // 2 errors
      expect(updated.name).toBe("Laptop 2")
      expect(JSON.parse((yield* service.getById(product.id)).json).name).toBe("Laptop 2")
      yield* service.remove(product.id) // 2 errors
      expect((yield* Effect.flip(service.getById(product.id)))._tag).toBe("ProductNotFound")
      expect(fake.reads.findById).toBe(4)
      const snapshot = yield* stats()
      expect(counts(snapshot)).toEqual({ hits: 0, misses: 0, sets: 0, deletes: 0, errors: 11 })
      expect(snapshot.hit_rate).toBe(0)
    })
  )
})

describe("ProductService under races and outages", () => {
  it.scoped("a reader that loaded the old row before an update cannot put it back in the cache", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      const held = yield* fake.holdReads

      const reader = yield* Effect.fork(service.getById(product.id))
      yield* held.loaded // the reader holds the old row and has not filled yet
      yield* held.unhold
      const updated = yield* service.update(product.id, { price: 1 })
      yield* held.release
      const stale = yield* Fiber.join(reader)

      // The reader's answer predates the write, which had not answered yet: allowed. Its fill is not.
      expect(JSON.parse(stale.json).price).toBe(laptop.price)
      expect((yield* stats()).sets).toBe(0)
      const next = yield* service.getById(product.id)
      expect(next).toEqual({ json: JSON.stringify(updated), fromCache: false })
    })
  )

  it.scoped("the same race on a list page", () =>
    Effect.gen(function* () {
      const { fake, service } = yield* setup()
      const product = yield* service.create(laptop)
      const held = yield* fake.holdReads
      const reader = yield* Effect.fork(service.list(0, 20))
      yield* held.loaded
      yield* held.unhold
      yield* service.update(product.id, { name: "Renamed" })
      yield* held.release
      yield* Fiber.join(reader)
      const next = yield* service.list(0, 20)
      expect(next.fromCache).toBe(false)
      expect(JSON.parse(next.json).products[0].name).toBe("Renamed")
    })
  )

  it.scoped("an invalidation lost while the cache was down is applied before the key is read again", () =>
    Effect.gen(function* () {
      const { cache, memory, service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id) // cached: the old value
      yield* service.list(0, 20)
      yield* cache.setDown(true)
      const updated = yield* service.update(product.id, { price: 1 }) // both invalidations fail
      yield* cache.setDown(false)
      // The old entries are still in the cache...
      expect((yield* memory.lookup(CacheKeys.make("product:").product(product.id)))._tag).toBe("Hit")
      // ...but they are never served.
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(updated), fromCache: false })
      expect(JSON.parse((yield* service.list(0, 20)).json).products[0].price).toBe(1)
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(updated), fromCache: true })
      expect((yield* stats()).errors).toBe(2)
    })
  )

  it.scoped("while a lost invalidation still cannot be applied, reads bypass the cache", () =>
    Effect.gen(function* () {
      const { cache, service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* cache.setDown(true)
      const updated = yield* service.update(product.id, { price: 2 })
      expect(yield* service.getById(product.id)).toEqual({
        json: JSON.stringify(updated),
        fromCache: false,
        cacheFailed: true
      })
      expect((yield* stats()).errors).toBe(3)
    })
  )
})
