import { SqlError } from "@effect/sql/SqlError"
import { Clock, Deferred, Effect, Layer, Option } from "effect"
import { aroundEach, Cache, CacheError } from "../../src/Cache.js"
import type { CacheOperation } from "../../src/Cache.js"
import type { Product, ProductId } from "../../src/Domain/Product.js"
import { ProductRepo } from "../../src/ProductRepo.js"

/**
 * An in-memory ProductRepo that counts its reads and can hold a read after it has taken its snapshot (`afterRead`),
 * which is how tests force a write to land between a reader's database load and its cache fill.
 */
export const makeRepo = Effect.sync(() => {
  const rows = new Map<number, Product>()
  let nextId = 1
  const reads = { findById: 0, findByIds: 0, page: 0 }
  let afterRead: Effect.Effect<void> = Effect.void
  let readsFail = false
  // As a real database that has gone away fails a read: a typed SqlError (the service answers 503 or a grace copy).
  const failing = Effect.suspend(() =>
    readsFail
      ? Effect.fail(new SqlError({ cause: new Error("database is down"), message: "database is down" }))
      : Effect.void
  )
  const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

  const repo = ProductRepo.make({
    findById: (id) =>
      Effect.sync(() => {
        reads.findById++
        return Option.fromNullable(rows.get(id))
      }).pipe(
        Effect.tap(() => afterRead),
        Effect.zipLeft(failing)
      ),
    findByIds: (ids) =>
      Effect.sync(() => {
        reads.findByIds++
        return ids.flatMap((id) => {
          const row = rows.get(id)
          return row === undefined ? [] : [row]
        })
      }).pipe(
        Effect.tap(() => afterRead),
        Effect.zipLeft(failing)
      ),
    page: (offset, limit) =>
      Effect.zipRight(
        failing,
        Effect.sync(() => {
          reads.page++
          const all = [...rows.values()].sort((a, b) => a.id - b.id)
          return { products: all.slice(offset, offset + limit), total: all.length }
        }).pipe(Effect.tap(() => afterRead))
      ),
    insert: (input) =>
      Effect.map(now, (at) => {
        const product = { id: nextId++ as ProductId, ...input, created_at: at, updated_at: at }
        rows.set(product.id, product)
        return product
      }),
    update: (id, patch) =>
      Effect.map(now, (at) => {
        const current = rows.get(id)
        if (current === undefined) return Option.none()
        const next = { ...current, ...patch, updated_at: at }
        rows.set(id, next)
        return Option.some(next)
      }),
    remove: (id) => Effect.sync(() => rows.delete(id)),
    ping: Effect.void
  })

  return {
    repo,
    layer: Layer.succeed(ProductRepo, repo),
    reads,
    /** While on, every read fails as a database that has gone away does (writes still work: a test's choice). */
    failReads: (on: boolean) => Effect.sync(() => void (readsFail = on)),
    /** Runs `effect` inside every later read, after the row was read and before it is returned. */
    holdReadsWith: (effect: Effect.Effect<void>) => Effect.sync(() => void (afterRead = effect)),
    /**
     * Holds every later read after its snapshot until `release`; `loaded` waits until a reader holds a snapshot.
     * Reads after `unhold` pass straight through again.
     */
    holdReads: Effect.gen(function* () {
      const loaded = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      afterRead = Effect.zipRight(Deferred.succeed(loaded, undefined), Deferred.await(release))
      return {
        loaded: Deferred.await(loaded),
        release: Deferred.succeed(release, undefined),
        unhold: Effect.sync(() => void (afterRead = Effect.void))
      }
    })
  }
})

/** Wraps a cache so a test can take it down and bring it back: while down, every operation fails. */
export const makeSwitchableCache = (inner: Cache["Type"], startDown = false) => {
  let down = startDown
  const unlessDown = <A>(op: CacheOperation, effect: Effect.Effect<A, CacheError>) =>
    Effect.suspend(() =>
      down ? Effect.fail(new CacheError({ op, reason: "failed", cause: new Error("cache is down") })) : effect
    )
  const cache = aroundEach(inner, unlessDown)
  return {
    cache,
    layer: Layer.succeed(Cache, cache),
    setDown: (value: boolean) => Effect.sync(() => void (down = value))
  }
}
