import { Effect, Exit, Option, Runtime } from "effect"
import * as AppConfig from "../AppConfig.js"
import type { Lookup, Slot } from "../Cache.js"
import { Cache } from "../Cache.js"
import * as Fills from "./Fills.js"
import * as Flights from "./Flights.js"
import * as Grace from "./Grace.js"
import * as Invalidation from "./Invalidation.js"
import { Invalidations } from "./Invalidations.js"
import * as RefreshAhead from "./RefreshAhead.js"
import * as Repeats from "./Repeats.js"
import type { Served } from "./Served.js"
import { cacheFailed, fromDatabase, servedOf } from "./Served.js"
import { CacheStats } from "./Stats.js"

export type { Served } from "./Served.js"

export type { Invalidation } from "./Invalidation.js"

/** One read: where its answer is cached, and how the database answers it. */
export interface ReadItem<E, A> {
  readonly slot: Slot
  /** The database's value as JSON text, or none when there is nothing to load. */
  readonly load: Effect.Effect<Option.Option<string>, E>
  /** The answer when there is nothing to load (remembered under `slot.absent` where the slot has one). */
  readonly absent: () => Effect.Effect<never, A>
}

export interface ReadOptions<E, A> extends ReadItem<E, A> {
  /**
   * The invalidation whose pending record keeps this read from the cache until it is applied; by default the one
   * that removes the slot (its index's, for an indexed slot).
   */
  readonly pending?: Invalidation.Invalidation
}

export interface ReadManyOptions<E, A, I extends ReadItem<E, A>> {
  /** The database's values of the items given, in that order, loaded together: the misses a batch holds leases of. */
  readonly loadMany: (items: ReadonlyArray<I>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, E>
  /**
   * Receives the answer to `items[at]` as soon as it is known, once per item: as `read` answers it, and when the
   * value is known already, settled (an `Exit`, which a caller may take without running it).
   */
  readonly answer: (at: number, answer: Effect.Effect<Served, E | A>) => void
}

/** A miss whose lease a batch holds, and the flight other readers join while the batch loads it. */
interface Leased {
  readonly at: number
  readonly stamp: string
  readonly lease: string
  readonly flight: Flights.Flight
}

/**
 * The cache-aside engine: reads through the cache (single flight and fill leases in Flights.ts, remembered "not
 * found"s and TTL jitter in Fills.ts, fallback copies in Grace.ts, refresh ahead in RefreshAhead.ts) and
 * invalidations that a cache failure records instead of losing. It knows slots and JSON text, never an entity: a
 * service says which slots and how to load them.
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
    const grace = yield* AppConfig.cacheGrace
    const clock = yield* Effect.clock
    const fills = Fills.make({ cache, stats, ttl: yield* AppConfig.cacheTtl, grace })
    const flights = Flights.make({ cache, clock, fill: fills.fill })
    const afterLoad = Grace.make({ cache, stats, invalidations, grace })
    const refreshAhead = RefreshAhead.make({
      cache,
      enabled: yield* AppConfig.cacheRefreshAhead,
      load: flights.load,
      runFork: Runtime.runFork(yield* Effect.runtime<never>())
    })

    const { entry, indexed, invalidate, invalidationOf, pendingKeyOf, settle } = Invalidation.make({
      cache,
      stats,
      invalidations
    })

    /** A read the cache cannot take part in: from the database, sharing the load of the key's readers meanwhile. */
    const bypass = <E, A>(item: ReadItem<E, A>): Effect.Effect<Served, E | A> =>
      Effect.map(Effect.flatMap(flights.bypass(item.slot.key, item.load), servedOf(item.absent)), cacheFailed)

    /**
     * What one lookup found, as the answer of the read (of `reads` reads, for a key a batch names more than once):
     * a hit answers its value, settled, and may start a refresh; a remembered absence answers `absent`; a miss loads
     * (or joins the load of its key and stamp) and answers what the load found.
     */
    const afterLookup = <E, A>(
      item: ReadItem<E, A>,
      found: Lookup,
      pendingKey: string,
      reads: number
    ): Effect.Effect<Served, E | A> => {
      switch (found._tag) {
        case "Hit":
          refreshAhead(item.slot, found, item.load, reads)
          return Exit.succeed({ json: found.value, fromCache: true })
        case "Absent":
          return item.absent()
        case "Miss":
          return afterLoad(
            item.slot,
            pendingKey,
            flights.load(item.slot, found.stamp, found.lease, item.load),
            item.absent
          )
      }
    }

    /**
     * The cache-aside read of `item.slot`. A pending invalidation (`item.pending`) is applied first, and while it
     * cannot be, the cache is bypassed.
     */
    const read = <E, A>(item: ReadOptions<E, A>): Effect.Effect<Served, E | A> => {
      const pendingKey = item.pending?.key ?? pendingKeyOf(item.slot)
      const cached = cache.lookup(item.slot).pipe(
        Effect.matchEffect({
          onFailure: (error) => Effect.zipRight(stats.error(error), bypass(item)),
          onSuccess: (found) =>
            Effect.zipRight(found._tag === "Miss" ? stats.miss : stats.hit, afterLookup(item, found, pendingKey, 1))
        })
      )
      return Effect.flatMap(invalidations.pending(pendingKey), (generation) =>
        generation === undefined
          ? cached
          : Effect.flatMap(settle(item.pending ?? invalidationOf(item.slot), generation), (settled) =>
              settled ? cached : bypass(item)
            )
      )
    }

    /** Loads the leased misses of a batch with one load and one fill, answers them, and lands their flights. */
    const loadLeased = <E, A, I extends ReadItem<E, A>>(
      items: ReadonlyArray<I>,
      leased: ReadonlyArray<Leased>,
      { answer, loadMany }: ReadManyOptions<E, A, I>,
      lookedUp: bigint
    ) =>
      Effect.suspend(() =>
        Effect.tap(loadMany(leased.map(({ at }) => items[at]!)), (values) =>
          fills.fillMany(
            leased.map(({ at, lease, stamp }, i) => ({ slot: items[at]!.slot, stamp, lease, value: values[i]! })),
            // Each entry keeps, for refresh ahead, what reloading it takes: a refresh claims the lease (a round trip,
            // as the lookup was) and then loads, so it is counted from the lookup, not from the query alone.
            Number(clock.unsafeCurrentTimeNanos() - lookedUp) / 1000
          )
        )
      ).pipe(
        Effect.exit,
        Effect.map((exit) =>
          leased.forEach(({ at, flight }, i) => {
            const { absent, slot } = items[at]!
            const loaded = Exit.map(exit, (values) => values[i]!)
            flights.land(flight, loaded)
            answer(
              at,
              Exit.isSuccess(loaded) && Option.isSome(loaded.value)
                ? Exit.succeed(fromDatabase(loaded.value.value))
                : afterLoad(slot, pendingKeyOf(slot), loaded, absent)
            )
          })
        )
      )

    /**
     * Many reads at once, for reads that arrive together (the fast path's batch): one look at the pending records,
     * one cache lookup, and for the misses this batch holds the leases of, one database load and one fill. Each item
     * is answered through `options.answer` as soon as its answer is known: hits and remembered absences right after
     * the lookup, the batch's own misses after their load; a miss another reader is loading waits for that reader,
     * and an item with a pending invalidation is read alone. When the lookup fails, every item is read from the
     * database, counted as that error, without asking the cache again (a sick cache costs each request one timeout,
     * not two). It never fails. Items of one key are read once (Repeats.ts).
     */
    const readMany = <E, A, I extends ReadItem<E, A>>(
      items: ReadonlyArray<I>,
      options: ReadManyOptions<E, A, I>
    ): Effect.Effect<void> =>
      Effect.suspend(() => {
        const { answer, asked, weightOf } = Repeats.make(items, options.answer)
        return Effect.flatMap(invalidations.pendingAll(asked.map((at) => pendingKeyOf(items[at]!.slot))), (pending) => {
          const lookedUp = clock.unsafeCurrentTimeNanos()
          const clean: Array<number> = []
          asked.forEach((at, i) => (pending[i] === undefined ? clean.push(at) : answer(at, read(items[at]!))))
          return cache.lookupMany(clean.map((at) => items[at]!.slot)).pipe(
            Effect.matchEffect({
              onFailure: (error) => {
                for (const at of clean) answer(at, Effect.zipRight(stats.error(error), bypass(items[at]!)))
                return Effect.void
              },
              onSuccess: (found) => {
                let hits = 0
                let misses = 0
                const leased: Array<Leased> = []
                found.forEach((one, i) => {
                  const at = clean[i]!
                  const item = items[at]!
                  const weight = weightOf(at)
                  if (one._tag !== "Miss") hits += weight
                  else {
                    misses += weight
                    // This batch loads what it holds the lease of, unless a load of this process already runs.
                    if (one.lease !== null) {
                      const flight = flights.takeOff(item.slot, one.stamp)
                      if (flight !== undefined)
                        return void leased.push({ at, stamp: one.stamp, lease: one.lease, flight })
                    }
                  }
                  answer(at, afterLookup(item, one, pendingKeyOf(item.slot), weight))
                })
                return Effect.zipRight(
                  stats.tally({ hits, misses }),
                  leased.length === 0 ? Effect.void : loadLeased(items, leased, { ...options, answer }, lookedUp)
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
