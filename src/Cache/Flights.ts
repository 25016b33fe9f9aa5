import { Deferred, Effect, Exit, FiberId, Option } from "effect"
import type { Cache, Slot } from "../Cache.js"
import { cacheCoalescedLoads, noLabels } from "../Metrics.js"
import type { Loaded } from "./Fills.js"

/** How long a reader that lost the fill lease waits for the holder's fill before loading itself. */
const leaseWaitMillis = 200
const leasePollMillis = 10

/** A load under way, and the readers of the same key and stamp that joined it. */
export interface Flight {
  readonly key: string
  // The first joiner makes the Deferred: most loads have none, and making one for each was a measurable share of a
  // miss's CPU.
  joined?: Deferred.Deferred<Option.Option<string>, unknown>
}

/** Readers of one key that wait for the next bypassing load, until it begins. */
interface Bypass {
  readonly done: Deferred.Deferred<Option.Option<string>, unknown>
  begun: boolean
}

export interface FlightsOptions {
  readonly cache: Cache["Type"]
  /** Stores a load's value; `load` is how long it took (µs). */
  readonly fill: (loaded: Loaded, load: number) => Effect.Effect<void>
  /** Times loads; the Effect clock, so tests can set it. */
  readonly clock: { readonly unsafeCurrentTimeNanos: () => bigint }
}

/**
 * Single flight: the loads of one process, shared by the readers that miss together. With the cache up, a miss
 * loads under the fill lease or waits briefly for the reader that holds it; with the cache away (`bypass`), one
 * load of a key runs at a time.
 */
export const make = ({ cache, clock, fill }: FlightsOptions) => {
  // Loads under way, by key and the stamp their miss saw. Concurrent misses that saw the same stamp share one
  // database load and one fill. A miss that saw another stamp comes after a write, so it never joins an older load.
  const loading = new Map<string, Flight>()
  const flightOf = (slot: Slot, stamp: string) => `${slot.key}\u0000${stamp}`

  const join = <E>(running: Flight) => {
    cacheCoalescedLoads.unsafeUpdate(1, noLabels)
    running.joined ??= Deferred.unsafeMake(FiberId.none)
    return Deferred.await(running.joined as Deferred.Deferred<Option.Option<string>, E>)
  }

  const launch = (key: string): Flight => {
    const flight: Flight = { key }
    loading.set(key, flight)
    return flight
  }

  /** Starts the flight of `slot` at `stamp`, unless one already runs; readers that saw the stamp join it until it lands. */
  const takeOff = (slot: Slot, stamp: string): Flight | undefined => {
    const key = flightOf(slot, stamp)
    return loading.has(key) ? undefined : launch(key)
  }

  const land = <E>(flight: Flight, exit: Exit.Exit<Option.Option<string>, E>) => {
    loading.delete(flight.key)
    if (flight.joined !== undefined) Deferred.unsafeDone(flight.joined, exit)
  }

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

  /** A miss's load (which fills the cache) or the one it joins: that of the slot at `stamp`, under `lease` if held. */
  const load = <E>(
    slot: Slot,
    stamp: string,
    lease: string | null,
    load: Effect.Effect<Option.Option<string>, E>
  ): Effect.Effect<Option.Option<string>, E> =>
    Effect.suspend(() => {
      const key = flightOf(slot, stamp)
      const running = loading.get(key)
      if (running !== undefined) {
        if (lease === null) return join<E>(running)
        // A lease taken while this process's load of the same stamp was still landing (its fill done, its flight not
        // yet off the map): given back by filling what that load found, or every later reader of the key would wait
        // out the lease for a fill nobody makes.
        return Effect.tap(join<E>(running), (value) => fill({ slot, stamp, lease, value }, 0))
      }
      const flight = launch(key)
      // The load's duration is kept with the entry for refresh ahead.
      const loadAndFill = Effect.suspend(() => {
        const started = clock.unsafeCurrentTimeNanos()
        return Effect.tap(load, (value) =>
          fill({ slot, stamp, lease, value }, Number(clock.unsafeCurrentTimeNanos() - started) / 1000)
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
          land(flight, exit)
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
  const bypassing = new Map<string, Bypass>()

  const bypass = <E>(
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

  return { load, takeOff, land, bypass } as const
}
