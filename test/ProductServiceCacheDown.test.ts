import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer } from "effect"
import { Cache } from "../src/Cache.js"
import * as Invalidations from "../src/Cache/Invalidations.js"
import { ReadThrough } from "../src/Cache/ReadThrough.js"
import { CacheStats } from "../src/Cache/Stats.js"
import type { Product } from "../src/Domain/Product.js"
import { CatalogRead, ProductService } from "../src/ProductService.js"
import type { CatalogAnswer } from "../src/ProductService.js"
import { config, counts, laptop, setup, waitUntil } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes with the cache down: single flight per process still holds, and never at the
// price of an answer older than a write.

type Setup = Effect.Effect.Success<ReturnType<typeof setup>>

/** Every query the fake repository ran. */
const loads = ({ fake }: Setup) => fake.reads.findById + fake.reads.findByIds + fake.reads.page

/** A product stored while the cache was up (so no invalidation is pending), then the cache taken down. */
const storedThenDown = Effect.gen(function* () {
  const context = yield* setup()
  const product = yield* context.service.create(laptop)
  yield* context.cache.setDown(true)
  return { ...context, product }
})

const concurrently = <A, E>(readers: number, read: Effect.Effect<A, E>) =>
  Effect.all(
    Array.from({ length: readers }, () => read),
    { concurrency: "unbounded" }
  )

/** Waits for the event loop's next turn, where the reads of this one have gone out as one query. */
const nextTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/**
 * `read` once, and while its loads (of `keys` keys) are held, `readers` more, a turn of the event loop apart (as
 * requests come: reads of one turn share a query anyway, ProductRepo/Loader.ts); every load is let go once each
 * reader has counted its failed lookups, and the answers are returned.
 */
const whileALoadRuns = <A, E>(context: Setup, read: Effect.Effect<A, E>, readers: number, keys = 1) =>
  Effect.gen(function* () {
    const release = yield* Deferred.make<void>()
    yield* context.fake.holdReadsWith(Deferred.await(release))
    const first = yield* Effect.fork(read)
    yield* waitUntil(Effect.sync(() => loads(context) === keys))
    const later: Array<Fiber.Fiber<A, E>> = []
    for (let i = 0; i < readers; i++) {
      later.push(yield* Effect.fork(read))
      yield* nextTurn
    }
    yield* waitUntil(Effect.map(context.stats(), (snapshot) => snapshot.errors === (1 + readers) * keys))
    yield* Deferred.succeed(release, undefined)
    return yield* Effect.forEach([first, ...later], Fiber.join)
  })

/** The fast path's batch of `reads`, each answer run as the fast path runs it: in a fiber of its own. */
const batchOf = (service: ProductService, reads: ReadonlyArray<CatalogRead>) =>
  Effect.gen(function* () {
    const handed: Array<Effect.Effect<CatalogAnswer, unknown>> = []
    yield* service.getMany(reads, (_, answer) => {
      // The failed lookup hands each read over as the effect that answers it, none settled.
      expect(Exit.isExit(answer)).toBe(false)
      handed.push(answer)
    })
    return yield* Effect.all(handed, { concurrency: "unbounded" })
  })

describe("ProductService with the cache down: single flight", () => {
  const product = (context: Setup & { product: Product }) => context.service.getById(context.product.id)
  const page = (context: Setup) => context.service.list(0, 20)
  const json = {
    product: (context: Setup & { product: Product }) => JSON.stringify(context.product),
    page: (context: Setup & { product: Product }) => JSON.stringify({ products: [context.product], total: 1 })
  }

  for (const [kind, read] of [
    ["product", product],
    ["list page", page]
  ] as const) {
    const expected = kind === "product" ? json.product : json.page

    it.scoped(`100 reads of one ${kind} at one moment cost one load; each counts one error, none a hit or a miss`, () =>
      Effect.gen(function* () {
        const context = yield* storedThenDown
        const reads = yield* concurrently(100, read(context))
        expect(new Set(reads.map((one) => one.json))).toEqual(new Set([expected(context)]))
        expect(reads.every((one) => !one.fromCache)).toBe(true)
        expect(loads(context)).toBe(1)
        expect(counts(yield* context.stats())).toEqual({ hits: 0, misses: 0, sets: 0, deletes: 0, errors: 100 })
      })
    )

    it.scoped(`99 reads of one ${kind} that come while its load runs share the next load: two in all`, () =>
      Effect.gen(function* () {
        const context = yield* storedThenDown
        const reads = yield* whileALoadRuns(context, read(context), 99)
        expect(new Set(reads.map((one) => one.json))).toEqual(new Set([expected(context)]))
        expect(loads(context)).toBe(2)
        expect(counts(yield* context.stats())).toEqual({ hits: 0, misses: 0, sets: 0, deletes: 0, errors: 100 })
      })
    )
  }

  it.scoped("the fast path's batches share loads too: 20 batches of a product and a page, two loads of each", () =>
    Effect.gen(function* () {
      const context = yield* storedThenDown
      const reads: ReadonlyArray<CatalogRead> = [
        CatalogRead.Product({ id: context.product.id }),
        CatalogRead.Page({ offset: 0, limit: 20 })
      ]
      const batches = yield* whileALoadRuns(context, batchOf(context.service, reads), 19, reads.length)
      const answers = batches.flat()
      expect(answers).toHaveLength(40)
      expect(new Set(answers.map((one) => one.json))).toEqual(new Set([json.product(context), json.page(context)]))
      expect(context.fake.reads.findById + context.fake.reads.findByIds).toBe(2)
      expect(context.fake.reads.page).toBe(2)
      expect(counts(yield* context.stats())).toMatchObject({ hits: 0, misses: 0, errors: 40 })
    })
  )
})

describe("ProductService with the cache down: a write races the reads", () => {
  it.scoped("a read that starts after a write has answered does not join a load that began before it", () =>
    Effect.gen(function* () {
      const context = yield* storedThenDown
      const { fake, product, service } = context
      const held = yield* fake.holdReads
      const early = yield* Effect.fork(service.getById(product.id))
      yield* held.loaded // the early load has read the old row
      yield* held.unhold
      yield* service.update(product.id, { price: 5 }) // its invalidations fail: recorded as pending
      const late = yield* Effect.fork(service.getById(product.id))
      yield* held.release
      expect(JSON.parse((yield* Fiber.join(early)).json).price).toBe(laptop.price)
      expect(JSON.parse((yield* Fiber.join(late)).json).price).toBe(5)
      expect(loads(context)).toBe(2)
    })
  )

  // When the other process reached the cache and this one cannot, its write leaves this one nothing to key a load by:
  // only a load that begins after the read arrived is safe to share.
  it.scoped("also when the write is another process's, made through the cache this process cannot reach", () =>
    Effect.gen(function* () {
      const context = yield* storedThenDown
      const { fake, product, service } = context
      const other = yield* Effect.map(
        Layer.build(
          ProductService.DefaultWithoutDependencies.pipe(
            Layer.provide(ReadThrough.Default),
            Layer.provideMerge(
              Layer.mergeAll(
                fake.layer,
                Layer.succeed(Cache, context.memory),
                CacheStats.Default,
                Invalidations.layerLocal
              )
            ),
            Layer.provide(config)
          )
        ),
        Context.get(ProductService)
      )
      const held = yield* fake.holdReads
      const early = yield* Effect.fork(service.getById(product.id))
      yield* held.loaded
      yield* held.unhold
      yield* other.update(product.id, { price: 5 }) // its invalidations reach the cache: nothing is pending
      const late = yield* Effect.fork(service.getById(product.id))
      yield* held.release
      expect(JSON.parse((yield* Fiber.join(early)).json).price).toBe(laptop.price)
      expect(JSON.parse((yield* Fiber.join(late)).json).price).toBe(5)
    })
  )
})
