import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Option, TestClock } from "effect"
import type { ProductId } from "../src/Domain/Product.js"
import { cacheRefreshes } from "../src/Metrics.js"
import { laptop, setup, counts } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: misses loaded together, and entries reloaded before they expire.

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
