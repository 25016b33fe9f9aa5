import type { SqlError } from "@effect/sql/SqlError"
import { Deferred, Duration, Effect, FiberId, FiberRef, Option, Runtime } from "effect"
import * as AppConfig from "./AppConfig.js"
import type { CacheError, Slot } from "./Cache.js"
import { Cache } from "./Cache.js"
import * as CacheKeys from "./CacheKeys.js"
import { CacheStats } from "./CacheStats.js"
import { Invalidations } from "./Invalidations.js"
import { cacheCoalescedLoads, cacheRefreshes, noLabels } from "./Metrics.js"
import type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
import { ProductNotFound } from "./Domain/Product.js"
import * as ProductLoader from "./ProductLoader.js"
import { ProductRepo } from "./ProductRepo.js"
import * as Tracing from "./Tracing.js"

/** A read's answer as JSON text: a hit is served as Redis holds it, never decoded and encoded again. */
export interface Served {
  readonly json: string
  readonly fromCache: boolean
  /**
   * Only on a fallback copy (CACHE_GRACE) served because the database failed: milliseconds since its value was
   * loaded, and the failure, which the answer hides from the client and the log must not.
   */
  readonly age?: number
  readonly failure?: unknown
}

const fromDatabase = (json: string): Served => ({ json, fromCache: false })

/** How long a reader that lost the fill lease waits for the holder's fill before loading itself. */
const leaseWaitMillis = 200
const leasePollMillis = 10

/**
 * Refresh ahead (XFetch: Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede Prevention",
 * VLDB 2015): a hit reloads its entry in the background with probability exp(-ttl / (beta * delta)), where `ttl` is
 * the entry's remaining life and `delta` how long its last load took. Beta 1 is the paper's optimum. Beyond
 * `refreshReach` loads from expiry the probability is below e^-40, so no random number is drawn at all: an ordinary
 * hit pays one multiplication and one comparison.
 */
const refreshBeta = 1
const refreshReach = 40

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
    const invalidations = yield* Invalidations
    const ttl = yield* AppConfig.cacheTtl
    const grace = yield* AppConfig.cacheGrace
    const graceOn = Duration.toMillis(grace) > 0
    // Off, no entry's load time makes a hit reload it.
    const reach = (yield* AppConfig.cacheRefreshAhead) ? refreshBeta * refreshReach : 0
    const clock = yield* Effect.clock
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // Misses for different ids in one turn of the event loop load in one query.
    // With tracing on, each read loads alone, under its own span.
    const loadProduct = (yield* FiberRef.get(FiberRef.currentTracerEnabled))
      ? (id: ProductId) => repo.findById(id)
      : ProductLoader.make(repo, runFork)
    const keys = CacheKeys.make(yield* AppConfig.cachePrefix, { maxPages: yield* AppConfig.cacheMaxPages })
    const traced = yield* Tracing.spans

    // Entries filled together must not expire together; jitter only shortens, so no entry outlives CACHE_TTL.
    const ttlMillis = Duration.toMillis(ttl)
    const jitteredTtl = () => Duration.millis(Math.max(1, Math.floor(ttlMillis * (1 - Math.random() * 0.1))))
    // A "not found" is remembered only briefly: long enough to absorb a storm of reads for a missing id.
    const absentTtl = Duration.millis(Math.max(1, Math.min(5_000, Math.floor(ttlMillis / 10))))

    // What a write removes: a product's value and remembered absence (moving its guard), or every list page.
    const invalidateSlot = (slot: Slot) => cache.invalidate([slot.key, slot.absent!], [slot.guard], [slot.shadow])
    const invalidatePages = cache.invalidateIndexed(keys.listIndex, keys.listGuard)

    // A write whose invalidation cannot reach the cache is recorded (for every process sharing the database) and
    // applied before its entry is used again; until then reads of that entry bypass the cache.
    const applyOrRecord = (pendingKey: string, invalidation: Effect.Effect<number, CacheError>) =>
      invalidation.pipe(
        Effect.flatMap(stats.deleted),
        Effect.catchTag("CacheError", (error) =>
          Effect.all([Effect.logWarning(error.message), stats.error(error), invalidations.record(pendingKey)], {
            discard: true
          })
        )
      )

    const invalidateProduct = (id: ProductId) => {
      const slot = keys.product(id)
      return applyOrRecord(slot.key, invalidateSlot(slot))
    }

    const invalidateLists = applyOrRecord(keys.listIndex.key, invalidatePages)

    /** Applies the pending invalidation `generation` of `pendingKey`; `false` while it still cannot be applied. */
    const settle = (pendingKey: string, generation: string, retry: Effect.Effect<number, CacheError>) =>
      retry.pipe(
        Effect.flatMap(stats.deleted),
        Effect.zipRight(invalidations.clear(pendingKey, generation)),
        Effect.as(true),
        Effect.catchTag("CacheError", (error) => Effect.as(stats.error(error), false))
      )

    const fill = (slot: Slot, stamp: string, lease: string | null, value: Option.Option<string>, load: number) =>
      cache
        .fill(slot, {
          stamp,
          lease,
          value: Option.getOrNull(value),
          ttl: Option.isSome(value) ? jitteredTtl() : absentTtl,
          load,
          grace
        })
        .pipe(
          Effect.flatMap((stored) => (stored && Option.isSome(value) ? stats.set : Effect.void)),
          Effect.catchTag("CacheError", stats.error)
        )

    /** Another reader holds the lease: give it a short while to fill, then stop waiting. */
    const awaitFill = (slot: Slot) =>
      Effect.gen(function* () {
        for (let waited = 0; waited < leaseWaitMillis; waited += leasePollMillis) {
          yield* Effect.sleep(leasePollMillis)
          const found = yield* Effect.option(cache.lookup(slot))
          if (Option.isNone(found)) return Option.none()
          if (found.value._tag === "Hit") return Option.some(Option.some(found.value.value))
          if (found.value._tag === "Absent") return Option.some(Option.none<string>())
          // The holder gave up or died and the lease came to us: load now.
          if (found.value.lease !== null) return Option.none()
        }
        return Option.none()
      })

    // Loads under way, by key and the stamp their miss saw. Concurrent misses that saw the same stamp share one
    // database load and one fill. A miss that saw another stamp comes after a write, so it never joins an older load.
    // The first joiner makes the Deferred: most loads have none, and making one was 2% of a miss's CPU, measured.
    const loading = new Map<string, { joined?: Deferred.Deferred<Option.Option<string>, unknown> }>()

    const loadShared = <E>(
      slot: Slot,
      stamp: string,
      lease: string | null,
      load: Effect.Effect<Option.Option<string>, E>
    ): Effect.Effect<Option.Option<string>, E> =>
      Effect.suspend(() => {
        const flight = `${slot.key}\u0000${stamp}`
        const running = loading.get(flight)
        if (running !== undefined) {
          cacheCoalescedLoads.unsafeUpdate(1, noLabels)
          running.joined ??= Deferred.unsafeMake(FiberId.none)
          return Deferred.await(running.joined as Deferred.Deferred<Option.Option<string>, E>)
        }
        const shared: { joined?: Deferred.Deferred<Option.Option<string>, unknown> } = {}
        loading.set(flight, shared)
        // The load's duration (µs, on the Effect clock so tests can set it) is kept with the entry for refresh ahead.
        const loadAndFill = Effect.suspend(() => {
          const started = clock.unsafeCurrentTimeNanos()
          return Effect.tap(load, (value) =>
            fill(slot, stamp, lease, value, Number(clock.unsafeCurrentTimeNanos() - started) / 1000)
          )
        })
        const run =
          lease !== null
            ? loadAndFill
            : Effect.flatMap(
                awaitFill(slot),
                Option.match({ onNone: () => loadAndFill, onSome: (value) => Effect.succeed(value) })
              )
        // Uninterruptible: readers that joined this load must get an answer even if the first one hangs up.
        return run.pipe(
          Effect.exit,
          Effect.flatMap((exit) => {
            loading.delete(flight)
            return shared.joined === undefined ? exit : Effect.zipRight(Deferred.done(shared.joined, exit), exit)
          }),
          Effect.uninterruptible
        )
      })

    /**
     * With CACHE_GRACE, a read whose database load failed answers with the slot's fallback copy, if a write has not
     * removed it. A write removes the copy with the entry; one whose removal could not reach the cache is pending, and
     * a pending invalidation of `pendingKey` (asked again here: it may have been recorded since the read began)
     * forbids the copy. Otherwise the load's failure stands.
     */
    const orStale = <E>(slot: Slot, pendingKey: string, failure: E): Effect.Effect<Served, E> =>
      Effect.flatMap(invalidations.pending(pendingKey), (generation) =>
        generation !== undefined
          ? Effect.fail(failure)
          : cache.stale(slot).pipe(
              Effect.catchTag("CacheError", (error) => Effect.as(stats.error(error), null)),
              Effect.flatMap((copy) =>
                copy === null
                  ? Effect.fail(failure)
                  : Effect.as(stats.stale, { json: copy.value, fromCache: true, age: copy.age, failure })
              )
            )
      )

    // Keys with a refresh under way in this process: a hot key's hits must not start one each.
    const refreshing = new Set<string>()

    /** Reloads `slot` in the background under the fill lease, unless another reader (here or elsewhere) holds it. */
    const refreshAhead = <E>(slot: Slot, load: Effect.Effect<Option.Option<string>, E>) => {
      if (refreshing.has(slot.key)) return
      refreshing.add(slot.key)
      cacheRefreshes.unsafeUpdate(1, noLabels)
      runFork(
        cache.claim(slot).pipe(
          Effect.flatMap(({ lease, stamp }) =>
            lease === null ? Effect.void : Effect.asVoid(loadShared(slot, stamp, lease, load))
          ),
          Effect.catchAll((error) =>
            // The entry stays until its TTL; the next miss loads it as usual.
            Effect.logDebug("refresh ahead failed", error)
          ),
          Effect.ensuring(Effect.sync(() => refreshing.delete(slot.key)))
        )
      )
    }

    /** XFetch: -beta * delta * ln(random) >= ttl, with delta (the load time) in µs and ttl in ms. */
    const refreshIfDue = <E>(
      slot: Slot,
      hit: { readonly ttl: number; readonly load: number },
      load: Effect.Effect<Option.Option<string>, E>
    ) => {
      if (hit.ttl * 1000 < hit.load * reach && -hit.load * refreshBeta * Math.log(Math.random()) >= hit.ttl * 1000) {
        refreshAhead(slot, load)
      }
    }

    /**
     * The cache-aside read of `slot`. A pending invalidation of `pendingKey` is applied first (`retry`), and while it
     * cannot be, the cache is bypassed. `absent` answers when there is nothing to load (remembered where it can be).
     */
    const readThrough = <E, A>(
      slot: Slot,
      pendingKey: string,
      retry: Effect.Effect<number, CacheError>,
      load: Effect.Effect<Option.Option<string>, E>,
      absent: () => Effect.Effect<never, A>
    ): Effect.Effect<Served, E | A> => {
      const served = Option.match({ onNone: absent, onSome: (json: string) => Effect.succeed(fromDatabase(json)) })
      // Built only on the paths that read the database, not on every hit.
      const fromDatabaseOnly = () => Effect.flatMap(load, served)
      const cached = cache.lookup(slot).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.zipRight(stats.error(error), fromDatabaseOnly()),
          onSuccess: (found): Effect.Effect<Served, E | A> => {
            switch (found._tag) {
              case "Hit":
                refreshIfDue(slot, found, load)
                return Effect.as(stats.hit, { json: found.value, fromCache: true })
              case "Absent":
                return Effect.zipRight(stats.hit, absent())
              case "Miss": {
                const loaded = loadShared(slot, found.stamp, found.lease, load)
                return Effect.zipRight(
                  stats.miss,
                  graceOn
                    ? Effect.matchEffect(loaded, {
                        onFailure: (failure) => orStale(slot, pendingKey, failure),
                        onSuccess: served
                      })
                    : Effect.flatMap(loaded, served)
                )
              }
            }
          }
        })
      )
      return Effect.flatMap(invalidations.pending(pendingKey), (generation) =>
        generation === undefined
          ? cached
          : Effect.flatMap(settle(pendingKey, generation, retry), (settled) => (settled ? cached : fromDatabaseOnly()))
      )
    }

    const findJson = (id: ProductId) =>
      Effect.map(
        loadProduct(id),
        Option.map((product) => JSON.stringify(product))
      )
    const notFound = (id: ProductId) => () => Effect.fail(new ProductNotFound({ id }))

    /** A product from the database alone. */
    const fromDatabaseAlone = (id: ProductId): Effect.Effect<Served, ProductNotFound | SqlError> =>
      Effect.flatMap(
        findJson(id),
        Option.match({ onNone: notFound(id), onSome: (json) => Effect.succeed(fromDatabase(json)) })
      )

    const getById = (id: ProductId): Effect.Effect<Served, ProductNotFound | SqlError> => {
      const slot = keys.product(id)
      // Built only when needed: a hit neither retries an invalidation nor touches the database.
      return readThrough(
        slot,
        slot.key,
        Effect.suspend(() => invalidateSlot(slot)),
        Effect.suspend(() => findJson(id)),
        notFound(id)
      ).pipe(traced("ProductService.getById", { id }))
    }

    /**
     * Reads many products with one cache step, for reads that arrive together (the lean path's batch). For each id
     * it answers what the cache holds now, counted as a hit, or else the read that answers that id on its own:
     * `getById` (a miss, a remembered absence, a pending invalidation to apply first), or, when the cache step
     * failed, a read from the database counted as that error, as `getById` would count it without asking the cache
     * again (a sick Redis costs each request one timeout, not two). It never fails.
     */
    const getByIds = (
      ids: ReadonlyArray<ProductId>
    ): Effect.Effect<ReadonlyArray<Served | Effect.Effect<Served, ProductNotFound | SqlError>>> =>
      Effect.suspend(() => {
        const slots = ids.map(keys.product)
        return invalidations.pendingAll(slots.map((slot) => slot.key)).pipe(
          Effect.flatMap((pending) => {
            const clean = slots.filter((_, at) => pending[at] === undefined)
            return cache.peek(clean).pipe(
              Effect.map((values) => {
                let next = 0
                return ids.map((id, at) => {
                  const found = pending[at] === undefined ? values[next++] : undefined
                  if (found?._tag !== "Hit") return getById(id)
                  refreshIfDue(
                    slots[at]!,
                    found,
                    Effect.suspend(() => findJson(id))
                  )
                  return { json: found.value, fromCache: true }
                })
              }),
              Effect.catchTag("CacheError", (error) =>
                Effect.succeed(ids.map((id) => Effect.zipRight(stats.error(error), fromDatabaseAlone(id))))
              )
            )
          }),
          Effect.tap((answers) =>
            Effect.forEach(answers, (answer) => (Effect.isEffect(answer) ? Effect.void : stats.hit), { discard: true })
          ),
          traced("ProductService.getByIds", { count: ids.length })
        )
      })

    /** A page as `{"products":[...],"total":N}`, the shape the contract fixes for list entries. */
    const list = (offset: number, limit: number): Effect.Effect<Served, SqlError> =>
      readThrough(
        keys.page(offset, limit),
        keys.listIndex.key,
        invalidatePages,
        Effect.suspend(() => Effect.map(repo.page(offset, limit), (page) => Option.some(JSON.stringify(page)))),
        // A page slot has no absent key, so a page is never reported absent.
        () => Effect.dieMessage("a list page was reported absent")
      ).pipe(traced("ProductService.list", { offset, limit }))

    // Writes commit first, then invalidate: moving the guards voids any fill that read the old row. A write runs to
    // its end whatever its client does: interrupted between the commit and the invalidations (a client hanging up
    // interrupts its request), it would leave cached pages showing what it replaced until their TTL.
    const create = (input: CreateProduct): Effect.Effect<Product, SqlError> =>
      repo.insert(input).pipe(
        // The id key too: a "not found" may have been remembered for it.
        Effect.tap((product) => invalidateProduct(product.id)),
        Effect.tap(() => invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.create")
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Product, ProductNotFound | SqlError> =>
      repo.update(id, patch).pipe(
        Effect.flatMap(
          Option.match({ onNone: () => Effect.fail(new ProductNotFound({ id })), onSome: Effect.succeed })
        ),
        Effect.tap(() => invalidateProduct(id)),
        Effect.tap(() => invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.update", { id })
      )

    const remove = (id: ProductId): Effect.Effect<void, ProductNotFound | SqlError> =>
      repo.remove(id).pipe(
        Effect.flatMap((removed) => (removed ? Effect.void : Effect.fail(new ProductNotFound({ id })))),
        Effect.zipRight(invalidateProduct(id)),
        Effect.zipRight(invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.remove", { id })
      )

    return { getById, getByIds, list, create, update, remove } as const
  }),
  dependencies: [ProductRepo.Default, CacheStats.Default]
}) {}
