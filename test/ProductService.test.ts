import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  TestClock
} from "effect"
import { Cache } from "../src/Cache.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import * as CacheKeys from "../src/CacheKeys.js"
import { CacheStats } from "../src/CacheStats.js"
import type { CreateProduct, ProductId } from "../src/Domain/Product.js"
import * as Invalidations from "../src/Invalidations.js"
import { cacheCoalescedLoads, cacheRefreshes } from "../src/Metrics.js"
import { ProductService } from "../src/ProductService.js"
import { makeRepo, makeSwitchableCache } from "./support/Fakes.js"

// ProductService composed with in-memory fakes: every counting rule of the contract, and every failure path.

const laptop: CreateProduct = { name: "Laptop", description: "fast", price: 999.99, stock: 5, category: "Electronics" }

const configWith = (ttl: string, env: Record<string, string> = {}) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ CACHE_TTL: ttl, ...env }))))

const config = configWith("1m")

/** A service over a fresh fake repo and a switchable in-memory cache, with handles on all of them. */
const setup = (
  options: { readonly cacheDown?: boolean; readonly ttl?: string; readonly env?: Record<string, string> } = {}
) =>
  Effect.gen(function* () {
    const fake = yield* makeRepo
    const memory = yield* Effect.map(Layer.build(MemoryCache.layer), Context.get(Cache))
    const cache = makeSwitchableCache(memory, options.cacheDown ?? false)
    const context = yield* Layer.build(
      ProductService.DefaultWithoutDependencies.pipe(
        Layer.provideMerge(Layer.mergeAll(fake.layer, cache.layer, CacheStats.Default, Invalidations.layerLocal)),
        Layer.provide(configWith(options.ttl ?? "1m", options.env)),
        // As main.ts runs without an OTLP endpoint: with tracing on, each read loads alone, under its own span.
        Layer.provide(Layer.setTracerEnabled(false))
      )
    )
    const stats = Context.get(context, CacheStats)
    return {
      service: Context.get(context, ProductService),
      stats: () => stats.snapshot,
      fake,
      cache,
      memory
    }
  })

/** Yields until `done` holds: forked fibers run on yields, not on the test clock. */
const waitUntil = (done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let turn = 0; turn < 10_000; turn++) {
      if (yield* done) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition not reached")
  })

const coalesced = Effect.map(Metric.value(cacheCoalescedLoads), (state) => state.count)

const counts = (snapshot: { hits: number; misses: number; sets: number; deletes: number; errors: number }) => ({
  hits: snapshot.hits,
  misses: snapshot.misses,
  sets: snapshot.sets,
  deletes: snapshot.deletes,
  errors: snapshot.errors
})

describe("ProductService reads", () => {
  it.scoped("a first read misses, loads and fills; the second hits without touching the database", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup()
      const product = yield* service.create(laptop)
      const first = yield* service.getById(product.id)
      const second = yield* service.getById(product.id)
      expect(first).toEqual({ json: JSON.stringify(product), fromCache: false })
      expect(second).toEqual({ json: JSON.stringify(product), fromCache: true })
      expect(fake.reads.findById).toBe(1)
      const snapshot = yield* stats()
      expect(counts(snapshot)).toEqual({ hits: 1, misses: 1, sets: 1, deletes: 0, errors: 0 })
      expect(snapshot.total_gets).toBe(2)
      expect(snapshot.hit_rate).toBe(0.5)
    })
  )

  it.scoped("an absent product fails with ProductNotFound, counts a miss and stores nothing", () =>
    Effect.gen(function* () {
      const { service, stats } = yield* setup()
      const exit = yield* Effect.exit(service.getById(42 as ProductId))
      expect(exit).toEqual(Exit.fail(expect.objectContaining({ _tag: "ProductNotFound", id: 42 })))
      expect(counts(yield* stats())).toEqual({ hits: 0, misses: 1, sets: 0, deletes: 0, errors: 0 })
    })
  )

  // min(CACHE_TTL / 10, 5 s): the first row is held by the cap, the second by the tenth.
  for (const [ttl, remembered] of [
    ["1m", 5_000],
    ["10s", 1_000]
  ] as const) {
    it.scoped(`with CACHE_TTL=${ttl} a "not found" is remembered for ${remembered} ms, then looked up again`, () =>
      Effect.gen(function* () {
        const { fake, service } = yield* setup({ ttl })
        const notFound = Effect.flip(service.getById(7 as ProductId))
        yield* notFound
        yield* TestClock.adjust(Duration.millis(remembered - 1))
        expect((yield* notFound)._tag).toBe("ProductNotFound")
        expect(fake.reads.findById).toBe(1)
        yield* TestClock.adjust(Duration.millis(1))
        expect((yield* notFound)._tag).toBe("ProductNotFound")
        expect(fake.reads.findById).toBe(2)
      })
    )
  }

  it.scoped("list pages are cached per offset and limit, as {products,total}", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup()
      const a = yield* service.create(laptop)
      const b = yield* service.create({ ...laptop, name: "Mouse" })
      const page = yield* service.list(0, 20)
      expect(JSON.parse(page.json)).toEqual({ products: [a, b], total: 2 })
      expect(page.fromCache).toBe(false)
      expect((yield* service.list(0, 20)).fromCache).toBe(true)
      const other = yield* service.list(1, 20)
      expect(other.fromCache).toBe(false)
      expect(JSON.parse(other.json)).toEqual({ products: [b], total: 2 })
      expect(fake.reads.page).toBe(2)
      expect(counts(yield* stats())).toEqual({ hits: 1, misses: 2, sets: 2, deletes: 0, errors: 0 })
    })
  )

  it.scoped("an entry expires within CACHE_TTL, no sooner than 90% of it", () =>
    Effect.gen(function* () {
      const { service } = yield* setup()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* TestClock.adjust(Duration.seconds(53))
      expect((yield* service.getById(product.id)).fromCache).toBe(true)
      yield* TestClock.adjust(Duration.seconds(7))
      expect((yield* service.getById(product.id)).fromCache).toBe(false)
    })
  )

  it.scoped("entries filled together do not expire together (TTL jitter)", () =>
    Effect.gen(function* () {
      const { service } = yield* setup()
      const ids: Array<ProductId> = []
      for (let i = 0; i < 40; i++) ids.push((yield* service.create({ ...laptop, name: `P${i}` })).id)
      for (const id of ids) yield* service.getById(id)
      yield* TestClock.adjust(Duration.seconds(57))
      const cached = yield* Effect.forEach(ids, (id) => Effect.map(service.getById(id), (read) => read.fromCache))
      expect(cached).toContain(true)
      expect(cached).toContain(false)
    })
  )

  // The held load keeps every reader a miss. Every reader but the first must join the load in flight; one that did
  // not would wait on the lease, and past the lease wait (the clock is moved beyond it) load for itself.
  const coldReads = <A>(options: {
    readonly readers: number
    readonly read: Effect.Effect<A, unknown>
    readonly setup: Effect.Effect.Success<ReturnType<typeof setup>>
  }) =>
    Effect.gen(function* () {
      const { fake, stats } = options.setup
      const release = yield* Deferred.make<void>()
      yield* fake.holdReadsWith(Deferred.await(release))
      const before = (yield* stats()).misses
      const joinedBefore = yield* coalesced
      // A daemon: were single flight broken, the readers would sleep on the test clock in uninterruptible loads, and
      // the failed expectation below must not wait for them.
      const readers = yield* Effect.forkDaemon(
        Effect.all(
          Array.from({ length: options.readers }, () => options.read),
          { concurrency: "unbounded" }
        )
      )
      yield* waitUntil(Effect.map(stats(), (snapshot) => snapshot.misses - before === options.readers))
      expect((yield* coalesced) - joinedBefore, "readers that joined the load in flight").toBe(options.readers - 1)
      yield* TestClock.adjust(Duration.millis(250))
      yield* Deferred.succeed(release, undefined)
      yield* fake.holdReadsWith(Effect.void)
      return yield* Fiber.join(readers)
    })

  it.scoped("concurrent reads of one cold key cause one database load and one fill; each counts a miss", () =>
    Effect.gen(function* () {
      const context = yield* setup()
      const { fake, service, stats } = context
      const product = yield* service.create(laptop)
      const reads = yield* coldReads({ readers: 200, read: service.getById(product.id), setup: context })
      expect(new Set(reads.map((read) => read.json))).toEqual(new Set([JSON.stringify(product)]))
      expect(fake.reads.findById).toBe(1)
      expect(counts(yield* stats())).toEqual({ hits: 0, misses: 200, sets: 1, deletes: 0, errors: 0 })
    })
  )

  it.scoped("concurrent reads of one cold list page cause one database load and one fill; each counts a miss", () =>
    Effect.gen(function* () {
      const context = yield* setup()
      const { fake, service, stats } = context
      yield* service.create(laptop)
      const pages = yield* coldReads({ readers: 50, read: service.list(0, 20), setup: context })
      expect(new Set(pages.map((page) => page.json)).size).toBe(1)
      expect(fake.reads.page).toBe(1)
      expect(counts(yield* stats())).toEqual({ hits: 0, misses: 50, sets: 1, deletes: 0, errors: 0 })
    })
  )

  it.scoped("a read that starts after a write does not join a load that started before it", () =>
    Effect.gen(function* () {
      const { fake, service } = yield* setup()
      const product = yield* service.create(laptop)
      const held = yield* fake.holdReads
      const early = yield* Effect.fork(service.getById(product.id))
      yield* held.loaded
      yield* held.unhold
      yield* service.update(product.id, { price: 5 })
      const late = yield* service.getById(product.id) // must not wait for, nor take, the early reader's old row
      yield* held.release
      yield* Fiber.join(early)
      expect(JSON.parse(late.json).price).toBe(5)
      expect(fake.reads.findById).toBe(2)
    })
  )
})

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
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(product), fromCache: false })
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(product), fromCache: false })
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
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(updated), fromCache: false })
      expect((yield* stats()).errors).toBe(3)
    })
  )
})

describe("ProductService batched loads", () => {
  it.scoped("concurrent misses for distinct ids load in one query; each reader gets its own product", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup()
      const created = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => service.create({ ...laptop, name: `P${i}` })
      )
      // Two readers per id (single flight joins them), and one id that does not exist.
      const ids = [...created.map((product) => product.id), 999 as ProductId]
      const reads = yield* Effect.all(
        [...ids, ...ids].map((id) => Effect.either(service.getById(id))),
        { concurrency: "unbounded" }
      )
      expect(fake.reads).toMatchObject({ findById: 0, findByIds: 1 })
      for (const [i, read] of reads.entries()) {
        const id = ids[i % ids.length]!
        if (id === 999) expect(read).toMatchObject({ _tag: "Left", left: { _tag: "ProductNotFound", id: 999 } })
        else expect(JSON.parse((read as { right: { json: string } }).right.json).id).toBe(id)
      }
      expect(counts(yield* stats())).toMatchObject({ misses: 42, sets: 20 })
      // All cached now: no query at all.
      yield* Effect.all(
        created.map((product) => service.getById(product.id)),
        { concurrency: "unbounded" }
      )
      expect(fake.reads).toMatchObject({ findById: 0, findByIds: 1 })
    })
  )

  it.scoped("a lone miss runs the single-row query; a failed batch fails each of its readers", () =>
    Effect.gen(function* () {
      const { fake, service } = yield* setup()
      const a = yield* service.create(laptop)
      const b = yield* service.create(laptop)
      yield* service.getById(a.id)
      expect(fake.reads).toMatchObject({ findById: 1, findByIds: 0 })
      yield* fake.failReads(true)
      const failed = yield* Effect.all(
        [Effect.flip(service.getById(b.id)), Effect.flip(service.getById(999 as ProductId))],
        {
          concurrency: "unbounded"
        }
      )
      expect(failed.map((error) => error._tag)).toEqual(["SqlError", "SqlError"])
      expect(fake.reads).toMatchObject({ findById: 1, findByIds: 1 })
    })
  )
})

describe("ProductService refresh ahead (XFetch)", () => {
  const refreshes = Effect.map(Metric.value(cacheRefreshes), (state) => state.count)

  // A load takes 400 ms (of the test clock) and the key is read every 10 ms: XFetch reloads it in the last second or so
  // of its life (the chance that no read before its last 400 ms starts a reload is e^-(40/e), below 1e-6).
  it.scoped("a hot key read steadily is reloaded in the background before it expires: no miss after the first", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* setup({ ttl: "2s" })
      const product = yield* service.create(laptop)
      yield* fake.holdReadsWith(Effect.sleep("400 millis"))
      const cold = yield* Effect.fork(service.getById(product.id))
      yield* TestClock.adjust("400 millis")
      yield* Fiber.join(cold)
      const refreshesBefore = yield* refreshes
      let waited = 0
      // Six seconds: three lifetimes of the entry.
      for (let elapsed = 0; elapsed < 6_000; elapsed += 10) {
        const read = yield* Effect.fork(service.getById(product.id))
        yield* TestClock.adjust("10 millis")
        // A hit is answered at once, also the one that started a refresh: none waits for the reload.
        const answered = yield* Fiber.poll(read)
        if (Option.isNone(answered)) waited++
        else expect(Exit.isSuccess(answered.value)).toBe(true)
      }
      expect(waited).toBe(0)
      yield* TestClock.adjust("500 millis") // a refresh the last reads started finishes
      const snapshot = yield* stats()
      expect(snapshot.misses).toBe(1)
      const refreshed = (yield* refreshes) - refreshesBefore
      expect(refreshed).toBeGreaterThanOrEqual(3)
      // One database load per refresh: a refresh in flight is not started again by the hits that follow.
      expect(fake.reads.findById).toBe(1 + refreshed)
      expect(snapshot.sets).toBe(1 + refreshed)
    })
  )

  it.scoped("a key far from expiry is never reloaded", () =>
    Effect.gen(function* () {
      const { fake, service } = yield* setup({ ttl: "1m" })
      const product = yield* service.create(laptop)
      yield* fake.holdReadsWith(Effect.sleep("100 millis"))
      const cold = yield* Effect.fork(service.getById(product.id))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(cold)
      for (let i = 0; i < 2_000; i++) yield* service.getById(product.id)
      expect(fake.reads.findById).toBe(1)
    })
  )

  it.scoped("a refresh that a write overtakes is voided by the guard: the written value stays", () =>
    Effect.gen(function* () {
      const { fake, service } = yield* setup({ ttl: "2s" })
      const product = yield* service.create(laptop)
      yield* fake.holdReadsWith(Effect.sleep("400 millis"))
      const cold = yield* Effect.fork(service.getById(product.id))
      yield* TestClock.adjust("400 millis")
      yield* Fiber.join(cold)
      const refreshesBefore = yield* refreshes
      // Read until a refresh starts; it is then loading (held for 400 ms) when the write lands.
      for (let step = 0; step < 300 && (yield* refreshes) === refreshesBefore; step++) {
        yield* service.getById(product.id)
        yield* TestClock.adjust("10 millis")
      }
      expect(yield* refreshes).toBe(refreshesBefore + 1)
      yield* fake.holdReadsWith(Effect.void)
      const updated = yield* service.update(product.id, { price: 7 })
      yield* TestClock.adjust("500 millis")
      expect(JSON.parse((yield* service.getById(product.id)).json)).toEqual(updated)
      expect(JSON.parse((yield* service.getById(product.id)).json)).toEqual(updated)
    })
  )
})

describe("ProductService with a grace period (CACHE_GRACE)", () => {
  const graceful = () => setup({ ttl: "10s", env: { CACHE_GRACE: "1m" } })

  it.scoped("a read whose load fails answers the expired entry's fallback copy, with its age, counted as stale", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* graceful()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* service.list(0, 20)
      yield* TestClock.adjust(Duration.seconds(25))
      yield* fake.failReads(true)
      const read = yield* service.getById(product.id)
      expect(read).toMatchObject({ json: JSON.stringify(product), fromCache: true, age: 25_000 })
      expect(read.failure).toMatchObject({ _tag: "SqlError" })
      expect(JSON.parse((yield* service.list(0, 20)).json).products).toEqual([product])
      const snapshot = yield* stats()
      expect(snapshot.stale).toBe(2)
      // Each was a miss first: the entry had expired.
      expect(counts(snapshot)).toMatchObject({ hits: 0, misses: 4 })
      // Past the grace period the copy is gone too, and the failure stands.
      yield* TestClock.adjust(Duration.seconds(50))
      expect((yield* Effect.flip(service.getById(product.id)))._tag).toBe("SqlError")
      expect((yield* Effect.flip(service.list(0, 20)))._tag).toBe("SqlError")
    })
  )

  it.scoped("a database that answers is always preferred: the copy is only for failures", () =>
    Effect.gen(function* () {
      const { service, stats } = yield* graceful()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* TestClock.adjust(Duration.seconds(25))
      expect(yield* service.getById(product.id)).toEqual({ json: JSON.stringify(product), fromCache: false })
      expect((yield* stats()).stale).toBe(0)
    })
  )

  it.scoped("after a write the copy is gone: a failing load answers the failure, never the replaced value", () =>
    Effect.gen(function* () {
      const { fake, service, stats } = yield* graceful()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* service.list(0, 20)
      yield* service.update(product.id, { price: 5 })
      yield* fake.failReads(true)
      expect((yield* Effect.flip(service.getById(product.id)))._tag).toBe("SqlError")
      expect((yield* Effect.flip(service.list(0, 20)))._tag).toBe("SqlError")
      expect((yield* stats()).stale).toBe(0)
    })
  )

  it.scoped("a write whose invalidation was lost forbids the copy, and applying it later removes the copy", () =>
    Effect.gen(function* () {
      const { cache, fake, service, stats } = yield* graceful()
      const product = yield* service.create(laptop)
      yield* service.getById(product.id)
      yield* service.list(0, 20)
      yield* cache.setDown(true)
      yield* service.update(product.id, { price: 5 }) // both invalidations fail: pending
      yield* cache.setDown(false)
      yield* TestClock.adjust(Duration.seconds(25))
      yield* fake.failReads(true)
      // The read applies the pending invalidation (copy removed with the entry), then its load fails.
      expect((yield* Effect.flip(service.getById(product.id)))._tag).toBe("SqlError")
      expect((yield* Effect.flip(service.list(0, 20)))._tag).toBe("SqlError")
      expect((yield* stats()).stale).toBe(0)
    })
  )
})

describe("ProductService across processes (two services on one cache and one repository)", () => {
  /** A second service (another process) over the same cache and repository as `first`. */
  const second = (first: Effect.Effect.Success<ReturnType<typeof setup>>) =>
    Effect.map(
      Layer.build(
        ProductService.DefaultWithoutDependencies.pipe(
          Layer.provideMerge(
            Layer.mergeAll(first.fake.layer, first.cache.layer, CacheStats.Default, Invalidations.layerLocal)
          ),
          Layer.provide(config)
        )
      ),
      Context.get(ProductService)
    )

  it.scoped("a reader that lost the fill lease takes the holder's fill instead of loading", () =>
    Effect.gen(function* () {
      const a = yield* setup()
      const b = yield* second(a)
      const product = yield* a.service.create(laptop)
      const release = yield* Deferred.make<void>()
      yield* a.fake.holdReadsWith(Deferred.await(release))
      const holder = yield* Effect.fork(a.service.getById(product.id)) // takes the lease, loads, is held
      yield* TestClock.adjust(Duration.millis(1))
      const waiter = yield* Effect.fork(b.getById(product.id)) // finds the lease taken: waits for the fill
      yield* TestClock.adjust(Duration.millis(20))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(holder)
      yield* TestClock.adjust(Duration.millis(20))
      expect((yield* Fiber.join(waiter)).json).toBe(JSON.stringify(product))
      expect(a.fake.reads.findById).toBe(1)
    })
  )

  it.scoped("a lease holder that hangs delays the others by the wait bound (200 ms) only", () =>
    Effect.gen(function* () {
      const a = yield* setup()
      const b = yield* second(a)
      const product = yield* a.service.create(laptop)
      const hang = yield* Deferred.make<void>()
      yield* a.fake.holdReadsWith(Deferred.await(hang)) // the holder's load does not return
      const holder = yield* Effect.fork(a.service.getById(product.id))
      yield* TestClock.adjust(Duration.millis(1))
      yield* a.fake.holdReadsWith(Effect.void)
      const waiter = yield* Effect.fork(b.getById(product.id))
      yield* TestClock.adjust(Duration.millis(150))
      expect(yield* Fiber.poll(waiter)).toEqual(Option.none())
      yield* TestClock.adjust(Duration.millis(60))
      expect((yield* Fiber.join(waiter)).json).toBe(JSON.stringify(product))
      expect(a.fake.reads.findById).toBe(2)
      yield* Deferred.succeed(hang, undefined)
      yield* Fiber.join(holder)
    })
  )
})
