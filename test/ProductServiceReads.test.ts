import { describe, expect, it, vi } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, TestClock } from "effect"
import type { ProductId } from "../src/Domain/Product.js"
import { laptop, setup, waitUntil, coalesced, counts } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: every counting rule of the contract on reads.

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

  // The jitter draws its share of the TTL with Math.random: pinned at either end, each bound is met to the millisecond.
  for (const [draw, lifetime] of [
    [0, 60_000],
    [1 - 1e-9, 54_000]
  ] as const) {
    it.scoped(`an entry expires within CACHE_TTL, no sooner than 90% of it: ${lifetime} ms at a draw of ${draw}`, () =>
      Effect.gen(function* () {
        const { service } = yield* setup()
        const product = yield* service.create(laptop)
        yield* Effect.acquireRelease(
          Effect.sync(() => vi.spyOn(Math, "random").mockReturnValue(draw)),
          (spy) => Effect.sync(() => spy.mockRestore())
        )
        yield* service.getById(product.id)
        yield* TestClock.adjust(Duration.millis(lifetime - 1))
        expect((yield* service.getById(product.id)).fromCache).toBe(true)
        yield* TestClock.adjust(Duration.millis(1))
        expect((yield* service.getById(product.id)).fromCache).toBe(false)
      })
    )
  }

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
