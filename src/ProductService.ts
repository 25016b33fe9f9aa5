import type { SqlError } from "@effect/sql/SqlError"
import { Deferred, Duration, Effect, FiberId, Option } from "effect"
import * as AppConfig from "./AppConfig.js"
import type { CacheError } from "./Cache.js"
import { Cache } from "./Cache.js"
import * as CacheKeys from "./CacheKeys.js"
import { CacheStats } from "./CacheStats.js"
import type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
import { ProductNotFound } from "./Domain/Product.js"
import { ProductRepo } from "./ProductRepo.js"

/** A read's answer as JSON text: a hit is served as Redis holds it, never decoded and encoded again. */
export interface Served {
  readonly json: string
  readonly fromCache: boolean
}

const fromDatabase = (json: string): Served => ({ json, fromCache: false })

/**
 * Cache-aside reads and invalidating writes.
 *
 * Counting (the contract's): a lookup that finds its key is a hit, one that does not a miss; each stored entry a
 * set; each removed key a delete; each cache operation that could not be done an error, and neither hit nor miss.
 * The cache is never a dependency: every cache failure is recovered here by answering from the database.
 */
export class ProductService extends Effect.Service<ProductService>()("ProductService", {
  effect: Effect.gen(function* () {
    const cache = yield* Cache
    const repo = yield* ProductRepo
    const stats = yield* CacheStats
    const ttl = yield* AppConfig.cacheTtl
    const keys = CacheKeys.make(yield* AppConfig.cachePrefix)

    // Invalidations that could not reach the cache, by entry key, with the generation of the last failure. Until
    // one is applied, that entry is neither read from nor written to the cache: it may hold what a write replaced.
    const pending = new Map<string, number>()
    let generation = 0

    const invalidate = (keysToDelete: ReadonlyArray<string>, guards: ReadonlyArray<string>) =>
      cache.invalidate(keysToDelete, guards).pipe(
        Effect.flatMap(stats.deleted),
        Effect.tapError(() => Effect.sync(() => keysToDelete.forEach((key) => pending.set(key, ++generation)))),
        Effect.catchTag("CacheError", (error) => Effect.zipRight(Effect.logWarning(error.message), stats.error))
      )

    const invalidateLists = cache.invalidateMatching(keys.listPattern, keys.listGuard).pipe(
      Effect.flatMap(stats.deleted),
      Effect.tapError(() => Effect.sync(() => pending.set(keys.listPattern, ++generation))),
      Effect.catchTag("CacheError", (error) => Effect.zipRight(Effect.logWarning(error.message), stats.error))
    )

    /** Retries a failed invalidation before its entry is used again; `false` while it still cannot be applied. */
    const settle = (pendingKey: string, retry: Effect.Effect<number, CacheError>) =>
      Effect.suspend(() => {
        const seen = pending.get(pendingKey)
        if (seen === undefined) return Effect.succeed(true)
        return retry.pipe(
          Effect.flatMap(stats.deleted),
          Effect.tap(() => Effect.sync(() => pending.get(pendingKey) === seen && pending.delete(pendingKey))),
          Effect.as(true),
          Effect.catchTag("CacheError", () => Effect.as(stats.error, false))
        )
      })

    // Entries filled together must not expire together; jitter only shortens, so no entry outlives CACHE_TTL.
    const ttlMillis = Duration.toMillis(ttl)
    const jitteredTtl = () => Duration.millis(Math.max(1, Math.floor(ttlMillis * (1 - Math.random() * 0.1))))

    // Loads under way, by key and the stamp their miss saw. Concurrent misses that saw the same stamp share one
    // database load and one fill. A miss that saw another stamp comes after a write, so it never joins an older load.
    const loading = new Map<string, Deferred.Deferred<string, unknown>>()

    const loadAndFill = <E>(key: string, guard: string, stamp: string, load: Effect.Effect<string, E>) =>
      Effect.suspend(() => {
        const flight = `${key}\u0000${stamp}`
        const running = loading.get(flight) as Deferred.Deferred<string, E> | undefined
        if (running !== undefined) return Deferred.await(running)
        const shared = Deferred.unsafeMake<string, E>(FiberId.none)
        loading.set(flight, shared as Deferred.Deferred<string, unknown>)
        const fill = (json: string) =>
          cache.fill({ key, value: json, ttl: jitteredTtl(), guard, stamp }).pipe(
            Effect.flatMap((stored) => (stored ? stats.set : Effect.void)),
            Effect.catchTag("CacheError", () => stats.error)
          )
        // Uninterruptible: readers that joined this load must get an answer even if the first one hangs up.
        return load.pipe(
          Effect.tap(fill),
          Effect.exit,
          Effect.flatMap((exit) => {
            loading.delete(flight)
            return Effect.zipRight(Deferred.done(shared, exit), exit)
          }),
          Effect.uninterruptible
        )
      })

    const readThrough = <E>(
      key: string,
      guard: string,
      usable: Effect.Effect<boolean>,
      load: Effect.Effect<string, E>
    ): Effect.Effect<Served, E> =>
      Effect.flatMap(usable, (cacheUsable) => {
        if (!cacheUsable) return Effect.map(load, fromDatabase)
        return cache.lookup(key, guard).pipe(
          Effect.matchEffect({
            onFailure: () => Effect.zipRight(stats.error, Effect.map(load, fromDatabase)),
            onSuccess: (found): Effect.Effect<Served, E> =>
              found._tag === "Hit"
                ? Effect.as(stats.hit, { json: found.value, fromCache: true })
                : stats.miss.pipe(Effect.zipRight(loadAndFill(key, guard, found.stamp, load)), Effect.map(fromDatabase))
          })
        )
      })

    const getById = (id: ProductId): Effect.Effect<Served, ProductNotFound | SqlError> => {
      const key = keys.id(id)
      return readThrough(
        key,
        keys.idGuard(id),
        settle(key, cache.invalidate([key], [keys.idGuard(id)])),
        Effect.flatMap(
          repo.findById(id),
          Option.match({
            onNone: () => Effect.fail(new ProductNotFound({ id })),
            onSome: (product) => Effect.succeed(JSON.stringify(product))
          })
        )
      ).pipe(Effect.withSpan("ProductService.getById", { attributes: { id } }))
    }

    /** A page as `{"products":[...],"total":N}`, the shape the contract fixes for list entries. */
    const list = (offset: number, limit: number): Effect.Effect<Served, SqlError> =>
      readThrough(
        keys.list(offset, limit),
        keys.listGuard,
        settle(keys.listPattern, cache.invalidateMatching(keys.listPattern, keys.listGuard)),
        Effect.map(repo.page(offset, limit), (page) => JSON.stringify(page))
      ).pipe(Effect.withSpan("ProductService.list", { attributes: { offset, limit } }))

    // Writes commit first, then invalidate: moving the guards voids any fill that read the old row.
    const create = (input: CreateProduct): Effect.Effect<Product, SqlError> =>
      repo.insert(input).pipe(
        // The id key too: a "not found" may have been remembered for it.
        Effect.tap((product) => invalidate([keys.id(product.id)], [keys.idGuard(product.id)])),
        Effect.tap(() => invalidateLists),
        Effect.withSpan("ProductService.create")
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Product, ProductNotFound | SqlError> =>
      repo.update(id, patch).pipe(
        Effect.flatMap(
          Option.match({
            onNone: () => Effect.fail(new ProductNotFound({ id })),
            onSome: (product) => Effect.succeed(product)
          })
        ),
        Effect.tap(() => invalidate([keys.id(id)], [keys.idGuard(id)])),
        Effect.tap(() => invalidateLists),
        Effect.withSpan("ProductService.update", { attributes: { id } })
      )

    const remove = (id: ProductId): Effect.Effect<void, ProductNotFound | SqlError> =>
      repo.remove(id).pipe(
        Effect.flatMap((removed) => (removed ? Effect.void : Effect.fail(new ProductNotFound({ id })))),
        Effect.zipRight(invalidate([keys.id(id)], [keys.idGuard(id)])),
        Effect.zipRight(invalidateLists),
        Effect.withSpan("ProductService.remove", { attributes: { id } })
      )

    return { getById, list, create, update, remove } as const
  }),
  dependencies: [ProductRepo.Default, CacheStats.Default]
}) {}
