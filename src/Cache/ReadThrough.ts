import { Deferred, Duration, Effect, Exit, FiberId, Option, Runtime } from "effect"
import * as AppConfig from "../AppConfig.js"
import type { CacheError, Fill, Index, Removal, Slot } from "../Cache.js"
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
  /** The cache failed this read (its lookup, or a pending invalidation it had to apply): answered from the database. */
  readonly cacheFailed?: true
}

/** What a write removes from the cache, and the key its pending record is kept under while the cache is away. */
export interface Invalidation {
  readonly key: string
  /** What it removes, for `invalidate` to send with others in one step. */
  readonly removal: Removal
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

export interface ReadManyOptions<E, A> {
  /** The database's values of `slots[at]` for every `at` given, in that order, loaded together. */
  readonly loadMany: (ats: ReadonlyArray<number>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, E>
  /** The `load` and `absent` of the read of `slots[at]`. */
  readonly load: (at: number) => Effect.Effect<Option.Option<string>, E>
  readonly absent: (at: number) => Effect.Effect<never, A>
  /** The read that answers `slots[at]` on its own: what a slot with a pending invalidation is handed over to. */
  readonly read: (at: number) => Effect.Effect<Served, E | A>
  /**
   * Receives the answer to `slots[at]` as soon as it is known, once per slot: a value, or the effect that answers
   * it (a remembered absence, a load to wait for, a read handed over).
   */
  readonly answer: (at: number, answer: Served | Effect.Effect<Served, E | A>) => void
}

const fromDatabase = (json: string): Served => ({ json, fromCache: false })

const cacheFailed = (served: Served): Served => ({ ...served, cacheFailed: true })

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
    const entry = (slot: Slot): Invalidation => {
      const keys = slot.absent === undefined ? [slot.key] : [slot.key, slot.absent]
      return {
        key: slot.key,
        removal: { _tag: "Keys", keys, guards: [slot.guard], also: [slot.shadow] },
        apply: cache.invalidate(keys, [slot.guard], [slot.shadow])
      }
    }

    /** Every entry the index names (moving `guard`, the guard of those entries). */
    const indexed = (index: Index, guard: string): Invalidation => ({
      key: index.key,
      removal: { _tag: "Indexed", index, guard },
      apply: cache.invalidateIndexed(index, guard)
    })

    const pendingKeyOf = (slot: Slot) => (slot.index === undefined ? slot.key : slot.index.key)
    const invalidationOf = (slot: Slot) => (slot.index === undefined ? entry(slot) : indexed(slot.index, slot.guard))

    // A write whose invalidation cannot reach the cache is recorded (for every process sharing the database) and
    // applied before its entry is used again; until then reads of that entry bypass the cache. Several are sent in one
    // step; if it fails, each counts as one failed invalidation and each is recorded, as if sent alone.
    const invalidate = (...all: ReadonlyArray<Invalidation>): Effect.Effect<void> =>
      (all.length === 1
        ? Effect.flatMap(all[0]!.apply, stats.deleted)
        : Effect.flatMap(cache.invalidateMany(all.map((invalidation) => invalidation.removal)), (counts) =>
            stats.deleted(counts.reduce((sum, count) => sum + count, 0))
          )
      ).pipe(
        Effect.catchTag("CacheError", (error) =>
          Effect.zipRight(
            Effect.logWarning(error.message),
            Effect.forEach(
              all,
              (invalidation) => Effect.zipRight(stats.error(error), invalidations.record(invalidation.key)),
              {
                discard: true
              }
            )
          )
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

    const fillOf = (stamp: string, lease: string | null, value: Option.Option<string>, load: number): Fill => ({
      stamp,
      lease,
      value: Option.getOrNull(value),
      ttl: Option.isSome(value) ? jitteredTtl() : absentTtl,
      load,
      grace
    })

    const fill = (slot: Slot, stamp: string, lease: string | null, value: Option.Option<string>, load: number) =>
      cache.fill(slot, fillOf(stamp, lease, value, load)).pipe(
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
    interface Flight {
      joined?: Deferred.Deferred<Option.Option<string>, unknown>
    }
    const loading = new Map<string, Flight>()
    const flightOf = (slot: Slot, stamp: string) => `${slot.key}\u0000${stamp}`

    const join = <E>(running: Flight) => {
      cacheCoalescedLoads.unsafeUpdate(1, noLabels)
      running.joined ??= Deferred.unsafeMake(FiberId.none)
      return Deferred.await(running.joined as Deferred.Deferred<Option.Option<string>, E>)
    }

    /** Starts a flight: readers that saw the same stamp join it until it lands. */
    const takeOff = (flight: string): Flight => {
      const shared: Flight = {}
      loading.set(flight, shared)
      return shared
    }

    const land = <E>(flight: string, shared: Flight, exit: Exit.Exit<Option.Option<string>, E>) => {
      loading.delete(flight)
      if (shared.joined !== undefined) Deferred.unsafeDone(shared.joined, exit)
    }

    const loadShared = <E>(
      slot: Slot,
      stamp: string,
      lease: string | null,
      load: Effect.Effect<Option.Option<string>, E>
    ): Effect.Effect<Option.Option<string>, E> =>
      Effect.suspend(() => {
        const flight = flightOf(slot, stamp)
        const running = loading.get(flight)
        if (running !== undefined) return join<E>(running)
        const shared = takeOff(flight)
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
            land(flight, shared, exit)
            return exit
          }),
          Effect.uninterruptible
        )
      })

    // Loads of reads that bypass the cache (its lookup failed, or a pending invalidation could not be applied), by
    // key: an outage of the cache must not multiply the database's load by the concurrency. With no stamp to tell a
    // load begun before a write (here or in another process) from one begun after it, a reader joins only a load that
    // has not begun: one load of a key runs at a time, and the readers that come meanwhile share the next, which
    // begins once all of them are there. So no reader takes a value read before it arrived.
    interface Bypass {
      readonly done: Deferred.Deferred<Option.Option<string>, unknown>
      begun: boolean
    }
    const bypassing = new Map<string, Bypass>()

    const loadBypassing = <E>(
      key: string,
      load: Effect.Effect<Option.Option<string>, E>
    ): Effect.Effect<Option.Option<string>, E> =>
      Effect.suspend(() => {
        const newest = bypassing.get(key)
        if (newest !== undefined && !newest.begun) {
          cacheCoalescedLoads.unsafeUpdate(1, noLabels)
          return Deferred.await(newest.done as Deferred.Deferred<Option.Option<string>, E>)
        }
        const next: Bypass = { done: Deferred.unsafeMake(FiberId.none), begun: false }
        bypassing.set(key, next)
        // The first load waits one yield, for the readers of the same moment; a next one for the load that runs.
        const turn = newest === undefined ? Effect.yieldNow() : Effect.exit(Deferred.await(newest.done))
        return turn.pipe(
          Effect.zipRight(
            Effect.suspend(() => {
              next.begun = true
              return load
            })
          ),
          Effect.exit,
          Effect.flatMap((exit) => {
            if (bypassing.get(key) === next) bypassing.delete(key)
            Deferred.unsafeDone(next.done, exit)
            return exit
          }),
          // Readers that joined must get an answer even if the one that began the load hangs up.
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

    /** A miss's answer once its load is done: the value, or `absent`; with a grace period, a failed load may fall back. */
    const afterLoad = <E, A>(
      slot: Slot,
      pendingKey: string,
      loaded: Effect.Effect<Option.Option<string>, E>,
      absent: () => Effect.Effect<never, A>
    ): Effect.Effect<Served, E | A> =>
      graceOn
        ? Effect.matchEffect(loaded, {
            onFailure: (failure) => orStale(slot, pendingKey, failure),
            onSuccess: servedOf(absent)
          })
        : Effect.flatMap(loaded, servedOf(absent))

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
      const fromDatabaseOnly = () => Effect.flatMap(loadBypassing(slot.key, load), served)
      const cached = cache.lookup(slot).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.zipRight(stats.error(error), Effect.map(fromDatabaseOnly(), cacheFailed)),
          onSuccess: (found): Effect.Effect<Served, E | A> => {
            switch (found._tag) {
              case "Hit":
                if (refreshDue(found)) refreshAhead(slot, load)
                return Effect.as(stats.hit, { json: found.value, fromCache: true })
              case "Absent":
                return Effect.zipRight(stats.hit, absent())
              case "Miss":
                return Effect.zipRight(
                  stats.miss,
                  afterLoad(slot, pendingKey, loadShared(slot, found.stamp, found.lease, load), absent)
                )
            }
          }
        })
      )
      return Effect.flatMap(invalidations.pending(pendingKey), (generation) =>
        generation === undefined
          ? cached
          : Effect.flatMap(settle(options.pending ?? invalidationOf(slot), generation), (settled) =>
              settled ? cached : Effect.map(fromDatabaseOnly(), cacheFailed)
            )
      )
    }

    /** A miss whose lease a batch holds, and the flight other readers join while the batch loads it. */
    interface Leased {
      readonly at: number
      readonly stamp: string
      readonly lease: string
      readonly flight: string
      readonly shared: Flight
    }

    /** Loads the leased misses of a batch with one load and one fill, answers them, and lands their flights. */
    const loadLeased = <E, A>(
      slots: ReadonlyArray<Slot>,
      leased: ReadonlyArray<Leased>,
      options: ReadManyOptions<E, A>,
      answer: (at: number, given: Served | Effect.Effect<Served, E | A>) => void,
      lookedUp: bigint
    ) =>
      Effect.suspend(() =>
        Effect.tap(options.loadMany(leased.map(({ at }) => at)), (values) => {
          // Each entry keeps, for refresh ahead, what reloading it takes: a refresh claims the lease (a round trip, as
          // the lookup was) and then loads, so it is counted from the lookup, not from the query alone.
          const load = Number(clock.unsafeCurrentTimeNanos() - lookedUp) / 1000
          const fills = leased.map(
            ({ at, lease, stamp }, i) => [slots[at]!, fillOf(stamp, lease, values[i]!, load)] as const
          )
          return cache.fillMany(fills).pipe(
            Effect.flatMap((stored) =>
              stats.tally({ sets: stored.filter((one, i) => one && Option.isSome(values[i]!)).length })
            ),
            // One fill each, as if each had filled alone.
            Effect.catchTag("CacheError", (error) =>
              Effect.forEach(leased, () => stats.error(error), { discard: true })
            )
          )
        })
      ).pipe(
        Effect.exit,
        Effect.map((exit) =>
          leased.forEach(({ at, flight, shared }, i) => {
            const slot = slots[at]!
            const loaded = Exit.map(exit, (values) => values[i]!)
            land(flight, shared, loaded)
            if (Exit.isSuccess(loaded) && Option.isSome(loaded.value)) answer(at, fromDatabase(loaded.value.value))
            else
              answer(
                at,
                afterLoad(slot, pendingKeyOf(slot), loaded, () => options.absent(at))
              )
          })
        )
      )

    /** The first position of every key in `slots` (what is read), and where each is named again (what is copied). */
    const distinct = (slots: ReadonlyArray<Slot>) => {
      const firstOf = new Map<string, number>()
      const copiesOf = new Map<number, Array<number>>()
      const asked: Array<number> = []
      slots.forEach((slot, at) => {
        const first = firstOf.get(slot.key)
        if (first === undefined) {
          firstOf.set(slot.key, at)
          asked.push(at)
        } else if (copiesOf.has(first)) copiesOf.get(first)!.push(at)
        else copiesOf.set(first, [at])
      })
      return { asked, copiesOf }
    }

    /**
     * Many reads at once, for reads that arrive together (the lean path's batch): one look at the pending record, one
     * cache lookup, and for the misses this batch holds the leases of, one database load and one fill. Each slot is
     * answered through `options.answer` as soon as its answer is known: hits and remembered absences right after the
     * lookup, the batch's own misses after their load; a miss another reader is loading waits for that reader, and a
     * slot with a pending invalidation is handed to `options.read`, each as the effect `answer` receives. When the
     * lookup fails, every slot is read from the database, counted as that error, without asking the cache again (a
     * sick cache costs each request one timeout, not two). It never fails. Slots named twice are read once.
     */
    const readMany = <E, A>(slots: ReadonlyArray<Slot>, options: ReadManyOptions<E, A>): Effect.Effect<void> =>
      Effect.suspend(() => {
        const { asked, copiesOf } = distinct(slots)
        const answer = (at: number, given: Served | Effect.Effect<Served, E | A>) => {
          options.answer(at, given)
          for (const copy of copiesOf.get(at) ?? []) options.answer(copy, given)
        }
        // A key read by several requests counts for each, as if each had looked it up.
        const weightOf = (at: number) => 1 + (copiesOf.get(at)?.length ?? 0)

        return Effect.flatMap(invalidations.pendingAll(asked.map((at) => pendingKeyOf(slots[at]!))), (pending) => {
          const lookedUp = clock.unsafeCurrentTimeNanos()
          const clean: Array<number> = []
          asked.forEach((at, i) => (pending[i] === undefined ? clean.push(at) : answer(at, options.read(at))))
          return cache.lookupMany(clean.map((at) => slots[at]!)).pipe(
            Effect.matchEffect({
              onFailure: (error) => {
                for (const at of clean) {
                  const fromDatabaseOnly = Effect.flatMap(
                    loadBypassing(slots[at]!.key, options.load(at)),
                    servedOf(() => options.absent(at))
                  ).pipe(Effect.map(cacheFailed))
                  answer(at, Effect.zipRight(stats.error(error), fromDatabaseOnly))
                }
                return Effect.void
              },
              onSuccess: (found) => {
                let hits = 0
                let misses = 0
                const leased: Array<Leased> = []
                found.forEach((one, i) => {
                  const at = clean[i]!
                  const slot = slots[at]!
                  switch (one._tag) {
                    case "Hit": {
                      // Each read is a hit and gets its own XFetch draw, as it would alone: with one draw for a hot
                      // key read by many in a turn, refreshes began too late (1-4 misses per expiry in the bench).
                      const weight = weightOf(at)
                      hits += weight
                      for (let draw = 0; draw < weight; draw++) {
                        if (!refreshDue(one)) continue
                        refreshAhead(slot, options.load(at))
                        break
                      }
                      return answer(at, { json: one.value, fromCache: true })
                    }
                    case "Absent":
                      hits += weightOf(at)
                      return answer(at, options.absent(at))
                    case "Miss": {
                      misses += weightOf(at)
                      // This batch loads what it holds the lease of, unless a load of this process already runs.
                      const flight = flightOf(slot, one.stamp)
                      if (one.lease !== null && !loading.has(flight)) {
                        const shared = takeOff(flight)
                        return void leased.push({ at, stamp: one.stamp, lease: one.lease, flight, shared })
                      }
                      const loaded = loadShared(slot, one.stamp, one.lease, options.load(at))
                      return answer(
                        at,
                        afterLoad(slot, pendingKeyOf(slot), loaded, () => options.absent(at))
                      )
                    }
                  }
                })
                return Effect.zipRight(
                  stats.tally({ hits, misses }),
                  leased.length === 0 ? Effect.void : loadLeased(slots, leased, options, answer, lookedUp)
                )
              }
            }),
            // The flights taken off above must land: readers that joined them wait for their answers.
            Effect.uninterruptible
          )
        })
      })

    return { read, readMany, invalidate, entry, indexed } as const
  })
}) {}
