import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Option, TestClock } from "effect"
import type { Product } from "../src/Domain/Product.js"
import { cacheRefreshes } from "../src/Metrics.js"
import { CatalogRead } from "../src/ProductService.js"
import type { CatalogAnswer, ProductService } from "../src/ProductService.js"
import { laptop, setup } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: refresh ahead (XFetch), on both read paths, and CACHE_REFRESH_AHEAD=false.

const refreshes = Effect.map(Metric.value(cacheRefreshes), (state) => state.count)

/** A product cached by a load that took 400 ms of the test clock (what XFetch weighs the entry's remaining life against). */
const warm = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const context = yield* setup({ ttl: "2s", env })
    const product = yield* context.service.create(laptop)
    yield* context.fake.holdReadsWith(Effect.sleep("400 millis"))
    const cold = yield* Effect.fork(context.service.getById(product.id))
    yield* TestClock.adjust("400 millis")
    yield* Fiber.join(cold)
    return { ...context, product }
  })

/** `reads` reads of `product` at one instant, alone (the HttpApi route) or as one batch (the fast path's turn). */
const paths = {
  alone: (service: ProductService, product: Product, reads: number) =>
    Effect.all(
      Array.from({ length: reads }, () => service.getById(product.id)),
      { concurrency: "unbounded" }
    ),
  batch: (service: ProductService, product: Product, reads: number) =>
    Effect.suspend(() => {
      const answers: Array<Effect.Effect<CatalogAnswer, unknown>> = []
      const batch = Array.from({ length: reads }, () => CatalogRead.Product({ id: product.id }))
      return Effect.flatMap(
        service.getMany(batch, (_, answer) => answers.push(answer)),
        () => Effect.all(answers)
      )
    })
} as const

/**
 * Reads `product` for six seconds of the test clock (three lifetimes of its entry), five times every 50 ms, and
 * counts the instants whose reads were not all answered at once (a hit never waits for a reload, also the one that
 * started it). A refresh the last reads started is given the time to finish.
 */
const readSteadily = (read: Effect.Effect<ReadonlyArray<CatalogAnswer>, unknown>) =>
  Effect.gen(function* () {
    let waited = 0
    for (let elapsed = 0; elapsed < 6_000; elapsed += 50) {
      const reads = yield* Effect.fork(read)
      yield* TestClock.adjust("50 millis")
      const answered = yield* Fiber.poll(reads)
      if (Option.isNone(answered)) waited++
      else expect(Exit.isSuccess(answered.value)).toBe(true)
    }
    yield* TestClock.adjust("500 millis")
    return waited
  })

// What these measure runs on the test clock; the wall-clock bound only stops a run that hangs. Each of the 130 clock
// steps waits for a real timer, which two busy cores can delay many times over.
const steadyBound = 120_000

describe("ProductService refresh ahead (XFetch)", () => {
  // A load takes 400 ms and the key is read 100 times a second: XFetch reloads it in the last second or so of its life
  // (the chance that no read before its last 400 ms starts a reload is about e^-15).
  for (const path of ["alone", "batch"] as const) {
    it.scoped(
      `a hot key read steadily is reloaded before it expires: no miss after the first (${path})`,
      () =>
        Effect.gen(function* () {
          const { fake, product, service, stats } = yield* warm()
          const refreshesBefore = yield* refreshes
          expect(yield* readSteadily(paths[path](service, product, 5))).toBe(0)
          const snapshot = yield* stats()
          expect(snapshot.misses).toBe(1)
          const refreshed = (yield* refreshes) - refreshesBefore
          expect(refreshed).toBeGreaterThanOrEqual(3)
          // One database load per refresh: a refresh in flight is not started again by the hits that follow.
          expect(fake.reads.findById).toBe(1 + refreshed)
          expect(snapshot.sets).toBe(1 + refreshed)
        }),
      steadyBound
    )

    it.scoped(
      `with CACHE_REFRESH_AHEAD=false a hot key is never reloaded early: it expires, and misses (${path})`,
      () =>
        Effect.gen(function* () {
          const { fake, product, service, stats } = yield* warm({ CACHE_REFRESH_AHEAD: "false" })
          const refreshesBefore = yield* refreshes
          yield* readSteadily(paths[path](service, product, 5))
          expect((yield* refreshes) - refreshesBefore).toBe(0)
          // Whatever the jitter (lifetimes of 1.8 to 2 s, each expiry followed by a 400 ms load), two expiries fall in
          // the six seconds, each a load: three with the first.
          expect(fake.reads.findById).toBe(3)
          expect((yield* stats()).misses).toBeGreaterThan(1)
        }),
      steadyBound
    )
  }

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
      const { fake, product, service } = yield* warm()
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
