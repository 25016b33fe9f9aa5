import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { RedisLive } from "../../src/Services.js"
import { CacheStats } from "../../src/Cache/Stats.js"
import { ProductRepo } from "../../src/ProductRepo.js"
import { create } from "../support/RedisApp.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App } from "../support/TestApp.js"

// The real app with its Redis stopped: single flight lives in the process, so an outage of the cache must not
// multiply the database's load by the concurrency (before: 18 loads for 100 reads of a product, 100 for a page).

/** The loads of the product and of the page so far, each held until `gate` opens. */
const counting = (gate: { current: Deferred.Deferred<void> }) => {
  const loads = { product: 0, page: 0 }
  const held = <A, E>(kind: keyof typeof loads, load: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      loads[kind]++
      return Effect.zipRight(Deferred.await(gate.current), load)
    })
  const wrap = (repo: ProductRepo) =>
    ProductRepo.make({
      ...repo,
      findById: (id) => held("product", repo.findById(id)),
      findByIds: (ids) => held("product", repo.findByIds(ids)),
      page: (offset, limit) => held("page", repo.page(offset, limit))
    })
  return { loads, wrap }
}

describe("Redis stopped", () => {
  it.scopedLive(
    "100 concurrent reads of a product, then of a page, cost one load each, or two: never one per read",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.make()
        const gate = { current: yield* Deferred.make<void>() }
        yield* Deferred.succeed(gate.current, undefined)
        const { loads, wrap } = counting(gate)
        yield* Effect.gen(function* () {
          const app = yield* App
          const stats = yield* CacheStats
          const product = yield* create("Laptop")
          yield* server.stop
          for (const [kind, path] of [
            ["product", `/api/v1/products/${product.id}`],
            ["page", "/api/v1/products"]
          ] as const) {
            gate.current = yield* Deferred.make<void>()
            const before = { loads: loads[kind], errors: (yield* stats.snapshot).errors }
            const reads = yield* Effect.fork(
              Effect.all(
                Array.from({ length: 100 }, () => app.get(path)),
                { concurrency: "unbounded" }
              )
            )
            // Every read has counted its failed lookup (and so asked for its load) before any load may finish.
            const counted = Effect.map(stats.snapshot, (snapshot) => snapshot.errors - before.errors === 100)
            expect(yield* TestApp.eventually(counted, 60_000), "every read counted its error").toBe(true)
            yield* Deferred.succeed(gate.current, undefined)
            const replies = yield* Fiber.join(reads)
            expect(replies.every((reply) => reply.status === 200 && reply.body.from_cache === false)).toBe(true)
            // One load for the reads that came before it began, and at most one more for all those that came while
            // it ran: a load that had begun may have read the database before a write they must see.
            expect(loads[kind] - before.loads, kind).toBeGreaterThanOrEqual(1)
            expect(loads[kind] - before.loads, kind).toBeLessThanOrEqual(2)
            const snapshot = yield* stats.snapshot
            expect(snapshot.errors - before.errors, kind).toBe(100)
            expect(snapshot.hits + snapshot.misses).toBe(0)
          }
        }).pipe(Effect.provide(TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url }, repo: wrap })))
      }),
    120_000
  )
})
