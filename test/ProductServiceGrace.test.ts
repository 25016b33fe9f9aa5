import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Duration, Effect, Either, Fiber, Layer, Option, TestClock } from "effect"
import { ReadThrough } from "../src/Cache/ReadThrough.js"
import { CacheStats } from "../src/Cache/Stats.js"
import * as Invalidations from "../src/Cache/Invalidations.js"
import { CatalogRead, ProductService } from "../src/ProductService.js"
import type { CatalogAnswer } from "../src/ProductService.js"
import { laptop, config, setup, counts } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: fallback copies under CACHE_GRACE, and two services sharing one cache and
// one repository as two processes do.

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

  // The read began before the write, so it may answer the old value or the new one, but not the copy of the old one
  // once its load has failed: the write has answered by then, and the copy is what it replaced.
  for (const path of ["alone", "in the fast path's batch"] as const) {
    it.scoped(`a write whose invalidation is lost while a read loads forbids the copy to that read (${path})`, () =>
      Effect.gen(function* () {
        const { cache, fake, service, stats } = yield* graceful()
        const product = yield* service.create(laptop)
        yield* service.getById(product.id)
        yield* TestClock.adjust(Duration.seconds(25)) // expired, its copy kept
        const held = yield* fake.holdReads
        const answers: Array<Effect.Effect<CatalogAnswer, { readonly _tag: string }>> = []
        const read =
          path === "alone"
            ? service.getById(product.id)
            : Effect.flatMap(
                service.getMany([CatalogRead.Product({ id: product.id })], (_, answer) => answers.push(answer)),
                () => answers[0]!
              )
        const reader = yield* Effect.fork(Effect.either(read))
        yield* held.loaded // a miss: its load has begun
        yield* held.unhold
        yield* cache.setDown(true)
        yield* service.update(product.id, { price: 5 }) // its invalidations cannot reach the cache: pending
        yield* cache.setDown(false)
        yield* fake.failReads(true)
        yield* held.release
        const outcome = yield* Fiber.join(reader)
        // Served, it would show the replaced price.
        expect(Either.isRight(outcome) ? JSON.parse(outcome.right.json).price : outcome.left._tag).toBe("SqlError")
        expect((yield* stats()).stale).toBe(0)
      })
    )
  }
})

describe("ProductService across processes (two services on one cache and one repository)", () => {
  /** A second service (another process) over the same cache and repository as `first`. */
  const second = (first: Effect.Effect.Success<ReturnType<typeof setup>>) =>
    Effect.map(
      Layer.build(
        ProductService.DefaultWithoutDependencies.pipe(
          Layer.provide(ReadThrough.Default),
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
