import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import type { ProductId } from "../src/Domain/Product.js"
import { CatalogRead } from "../src/ProductService.js"
import type { ProductService } from "../src/ProductService.js"
import { coalesced, counts, laptop, setup, waitUntil } from "./support/ProductServiceHarness.js"

// ProductService over in-memory fakes: misses loaded together (refresh ahead: ProductServiceRefreshAhead.test.ts).

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

describe("ProductService reads taken together (getMany, the fast path's batch)", () => {
  type Answer = Parameters<Parameters<ProductService["getMany"]>[1]>[1]

  /** Runs getMany and returns each position's answer: a value, or what the effect it was handed settles to. */
  const readTogether = (service: ProductService, reads: ReadonlyArray<ProductId | CatalogRead>) =>
    Effect.gen(function* () {
      const given = new Array<Answer | undefined>(reads.length)
      const catalog = reads.map((read) => (typeof read === "number" ? CatalogRead.Product({ id: read }) : read))
      yield* service.getMany(catalog, (at, answer) => {
        expect(given[at]).toBeUndefined()
        given[at] = answer
      })
      return yield* Effect.forEach(given, (answer): Effect.Effect<{ handedOver: boolean; settled: unknown }> =>
        answer === undefined
          ? Effect.dieMessage("a read was left unanswered")
          : Exit.isExit(answer) && Exit.isSuccess(answer)
            ? Effect.succeed({ handedOver: false, settled: answer.value })
            : Effect.map(Effect.either(answer), (settled) => ({ handedOver: true, settled }))
      )
    })

  it.scoped(
    "one lookup, one load and one fill for its misses; hits, a page, a repeat and an unknown id each as alone",
    () =>
      Effect.gen(function* () {
        const { fake, service, stats } = yield* setup()
        const [a, b, c] = yield* Effect.forEach([1, 2, 3], (n) => service.create({ ...laptop, name: `P${n}` }))
        yield* service.getById(a!.id)
        const before = { ...fake.reads }
        const page = CatalogRead.Page({ offset: 0, limit: 2 })
        const answers = yield* readTogether(service, [a!.id, b!.id, c!.id, b!.id, 999 as ProductId, page])

        // The hit and the loaded products are answered as values (no fiber of their own); the repeat as its first.
        expect(answers.slice(0, 4).map(({ handedOver, settled }) => [handedOver, settled])).toEqual([
          [false, { json: JSON.stringify(a), fromCache: true }],
          [false, { json: JSON.stringify(b), fromCache: false }],
          [false, { json: JSON.stringify(c), fromCache: false }],
          [false, { json: JSON.stringify(b), fromCache: false }]
        ])
        expect(answers[4]).toMatchObject({ settled: { _tag: "Left", left: { _tag: "ProductNotFound", id: 999 } } })
        const pageJson = JSON.stringify({ products: [a, b], total: 3 })
        expect(answers[5]).toEqual({ handedOver: false, settled: { json: pageJson, fromCache: false } })
        // b, c and 999 in one query, the page in its own; each miss filled (the unknown id remembered as absent).
        const queries = () => ({
          findById: fake.reads.findById - before.findById,
          findByIds: fake.reads.findByIds - before.findByIds,
          page: fake.reads.page - before.page
        })
        expect(queries()).toEqual({ findById: 0, findByIds: 1, page: 1 })
        expect(counts(yield* stats())).toMatchObject({ hits: 1, misses: 1 + 5, sets: 1 + 3, errors: 0 })

        // Now all in the cache: hits, and the remembered absence, with no query.
        const again = yield* readTogether(service, [b!.id, page, c!.id, 999 as ProductId])
        expect(again.map(({ settled }) => settled)).toMatchObject([
          { json: JSON.stringify(b), fromCache: true },
          { json: pageJson, fromCache: true },
          { json: JSON.stringify(c), fromCache: true },
          { _tag: "Left", left: { _tag: "ProductNotFound" } }
        ])
        expect(queries()).toEqual({ findById: 0, findByIds: 1, page: 1 })
      })
  )

  it.scoped(
    "a lone read of a key the batch is loading joins that load; the cache down, each is read from the database",
    () =>
      Effect.gen(function* () {
        const { cache, fake, service, stats } = yield* setup()
        const product = yield* service.create(laptop)
        const held = yield* fake.holdReads
        const batch = yield* Effect.fork(readTogether(service, [product.id]))
        yield* held.loaded
        const joinedBefore = yield* coalesced
        const lone = yield* Effect.fork(service.getById(product.id))
        yield* waitUntil(Effect.map(coalesced, (count) => count === joinedBefore + 1))
        yield* held.release
        yield* held.unhold
        expect((yield* Fiber.join(batch))[0]).toEqual({
          handedOver: false,
          settled: { json: JSON.stringify(product), fromCache: false }
        })
        expect(yield* Fiber.join(lone)).toEqual({ json: JSON.stringify(product), fromCache: false })
        expect(fake.reads).toMatchObject({ findById: 1, findByIds: 0 })

        yield* cache.setDown(true)
        const down = yield* readTogether(service, [product.id, 999 as ProductId])
        expect(down.map(({ handedOver, settled }) => [handedOver, settled])).toMatchObject([
          [true, { _tag: "Right", right: { json: JSON.stringify(product), fromCache: false } }],
          [true, { _tag: "Left", left: { _tag: "ProductNotFound" } }]
        ])
        // One failed lookup, counted for each read it failed.
        expect(counts(yield* stats())).toMatchObject({ errors: 2 })
      })
  )
})
