import { Deferred, Duration, Effect, FiberId, Option, Runtime } from "effect"
import * as AppConfig from "../AppConfig.js"
import type { CacheError, Index, Slot } from "../Cache.js"
import { Cache } from "../Cache.js"
import { cacheCoalescedLoads, cacheRefreshes, noLabels } from "../Metrics.js"
import { Invalidations } from "./Invalidations.js"
import { CacheStats } from "./Stats.js"

/** A read's answer as JSON text: a hit is served as the cache holds it, never decoded and encoded again. */
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

/** What a write removes from the cache, and the key its pending record is kept under while the cache is away. */
export interface Invalidation {
  readonly key: string
  /** Removes the entries; how many existed. */
  readonly apply: Effect.Effect<number, CacheError>
}

export interface ReadOptions<E, A> {
  /** The database's value as JSON text, or none when there is nothing to load. */
  readonly load: Effect.Effect<Option.Option<string>, E>
  /** The answer when there is nothing to load (remembered under `slot.absent` where the slot has one). */
  readonly absent: () => Effect.Effect<never, A>
  /**
   * The invalidation whose pending record keeps this read from the cache until it is applied; by default the one
   * that removes the slot (its index's, for an indexed slot).
   */
  readonly pending?: Invalidation
}

export interface PeekOptions<E, A> {
  /** The `load` and `absent` of the read of `slots[at]`. */
  readonly load: (at: number) => Effect.Effect<Option.Option<string>, E>
  readonly absent: (at: number) => Effect.Effect<never, A>
  /** The read that answers `slots[at]` on its own: what a slot not answered by the peek is handed over to. */
  readonly read: (at: number) => Effect.Effect<Served, E | A>
}

const fromDatabase = (json: string): Served => ({ json, fromCache: false })

/** What a load found, as the read's answer: its value, or `absent` when there is none. */
const servedOf =
  <A>(absent: () => Effect.Effect<never, A>) =>
  (found: Option.Option<string>): Effect.Effect<Served, A> =>
    Option.isSome(found) ? Effect.succeed(fromDatabase(found.value)) : absent()

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
 * The cache-aside engine: reads through the cache (single flight, fill leases, remembered "not found"s, TTL jitter,
 * grace copies, refresh ahead) and invalidations that a cache failure records instead of losing. It knows slots and
 * JSON text, never an entity: a service says which slots and how to load them.
 *
 * Counting (the contract's): a lookup that finds its key is a hit, one that does not a miss; each stored entry a
 * set; each removed key a delete; each cache operation that could not be done an error, and neither hit nor miss.
 * The cache is never a dependency: every cache failure is recovered here by answering from the database.
 */
export class ReadThrough extends Effect.Service<ReadThrough>()("ReadThrough", {
  effect: Effect.gen(function* () {
    const cache = yield* Cache
    const stats = yield* CacheStats
    const invalidations = yield* Invalidations
    const ttl = yield* AppConfig.cacheTtl
    const grace = yield* AppConfig.cacheGrace
    const graceOn = Duration.toMillis(grace) > 0
    // Off, no entry's load time makes a hit reload it.
    const reach = (yield* AppConfig.cacheRefreshAhead) ? refreshBeta * refreshReach : 0
    const clock = yield* Effect.clock
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())

    // Entries filled together must not expire together; jitter only shortens, so no entry outlives CACHE_TTL.
    const ttlMillis = Duration.toMillis(ttl)
    const jitteredTtl = () => Duration.millis(Math.max(1, Math.floor(ttlMillis * (1 - Math.random() * 0.1))))
    // A "not found" is remembered only briefly: long enough to absorb a storm of reads for a missing id.
    const absentTtl = Duration.millis(Math.max(1, Math.min(5_000, Math.floor(ttlMillis / 10))))

    /** A slot's value and remembered absence, moving its guard. */
    const entry = (slot: Slot): Invalidation => ({
      key: slot.key,
      apply: cache.invalidate(
        slot.absent === undefined ? [slot.key] : [slot.key, slot.absent],
        [slot.guard],
        [slot.shadow]
      )
    })

    /** Every entry the index names (moving `guard`, the guard of those entries). */
    const indexed = (index: Index, guard: string): Invalidation => ({
      key: index.key,
      apply: cache.invalidateIndexed(index, guard)
    })

    const pendingKeyOf = (slot: Slot) => (slot.index === undefined ? slot.key : slot.index.key)
    const invalidationOf = (slot: Slot) => (slot.index === undefined ? entry(slot) : indexed(slot.index, slot.guard))

    // A write whose invalidation cannot reach the cache is recorded (for every process sharing the database) and
    // applied before its entry is used again; until then reads of that entry bypass the cache.
    const invalidate = (invalidation: Invalidation): Effect.Effect<void> =>
      invalidation.apply.pipe(
        Effect.flatMap(stats.deleted),
        Effect.catchTag("CacheError", (error) =>
          Effect.all([Effect.logWarning(error.message), stats.error(error), invalidations.record(invalidation.key)], {
            discard: true
          })
        )
      )

    /** Applies the pending invalidation `generation`; `false` while it still cannot be applied. */
    const settle = (invalidation: Invalidation, generation: string) =>
      invalidation.apply.pipe(
        Effect.flatMap(stats.deleted),
        Effect.zipRight(invalidations.clear(invalidation.key, generation)),
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
    // The first joiner makes the Deferred: most loads have none, and making one for each was a measurable share of
    // a miss's CPU.
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
    const refreshDue = (hit: { readonly ttl: number; readonly load: number }) =>
      hit.ttl * 1000 < hit.load * reach && -hit.load * refreshBeta * Math.log(Math.random()) >= hit.ttl * 1000

    /**
     * The cache-aside read of `slot`. A pending invalidation (`options.pending`) is applied first, and while it cannot
     * be, the cache is bypassed.
     */
    const read = <E, A>(slot: Slot, options: ReadOptions<E, A>): Effect.Effect<Served, E | A> => {
      const { absent, load } = options
      const pendingKey = options.pending?.key ?? pendingKeyOf(slot)
      const served = servedOf(absent)
      // Built only on the paths that read the database, not on every hit.
      const fromDatabaseOnly = () => Effect.flatMap(load, served)
      const cached = cache.lookup(slot).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.zipRight(stats.error(error), fromDatabaseOnly()),
          onSuccess: (found): Effect.Effect<Served, E | A> => {
            switch (found._tag) {
              case "Hit":
                if (refreshDue(found)) refreshAhead(slot, load)
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
          : Effect.flatMap(settle(options.pending ?? invalidationOf(slot), generation), (settled) =>
              settled ? cached : fromDatabaseOnly()
            )
      )
    }

    /**
     * Many reads with one cache step, for reads that arrive together (the lean path's batch). For each slot it answers
     * what the cache holds now, counted as a hit, or else hands the slot to the read that answers it on its own
     * (`options.read`: a miss, a remembered absence, a pending invalidation to apply first), or, when the cache step
     * failed, a read from the database counted as that error, as that read would count it without asking the cache
     * again (a sick cache costs each request one timeout, not two). It never fails.
     */
    const peek = <E, A>(
      slots: ReadonlyArray<Slot>,
      options: PeekOptions<E, A>
    ): Effect.Effect<ReadonlyArray<Served | Effect.Effect<Served, E | A>>> =>
      invalidations.pendingAll(slots.map(pendingKeyOf)).pipe(
        Effect.flatMap((pending) => {
          const clean = slots.filter((_, at) => pending[at] === undefined)
          return cache.peek(clean).pipe(
            Effect.map((values) => {
              let next = 0
              return slots.map((slot, at): Served | Effect.Effect<Served, E | A> => {
                const found = pending[at] === undefined ? values[next++] : undefined
                if (found?._tag !== "Hit") return options.read(at)
                if (refreshDue(found)) refreshAhead(slot, options.load(at))
                return { json: found.value, fromCache: true }
              })
            }),
            Effect.catchTag("CacheError", (error) =>
              Effect.succeed(
                slots.map((_, at) =>
                  Effect.zipRight(
                    stats.error(error),
                    Effect.flatMap(
                      options.load(at),
                      servedOf(() => options.absent(at))
                    )
                  )
                )
              )
            )
          )
        }),
        Effect.tap((answers) =>
          Effect.forEach(answers, (answer) => (Effect.isEffect(answer) ? Effect.void : stats.hit), { discard: true })
        )
      )

    return { read, peek, invalidate, entry, indexed } as const
  })
}) {}
