import type { Option } from "effect"
import { Effect } from "effect"
import type { Cache, Slot } from "../Cache.js"
import { cacheRefreshes, noLabels } from "../Metrics.js"

/**
 * Refresh ahead (XFetch: Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache Stampede Prevention",
 * VLDB 2015): a hit reloads its entry in the background with probability exp(-ttl / (beta * delta)), where `ttl` is
 * the entry's remaining life and `delta` how long its last load took. Beta 1 is the paper's optimum. Beyond `reach`
 * loads from expiry the probability is below e^-40, so no random number is drawn at all: an ordinary hit pays one
 * multiplication and one comparison.
 */
export const beta = 1
const reach = 40

/** A hit as the draw weighs it: milliseconds its entry has left, microseconds its last load took (0: unknown). */
export interface Remaining {
  readonly ttl: number
  readonly load: number
}

/** XFetch's draw: -beta * delta * ln(random) >= ttl, with delta (the load time) in µs and ttl in ms. */
export const isDue = (hit: Remaining, random: () => number = Math.random): boolean =>
  hit.ttl * 1000 < hit.load * beta * reach && -hit.load * beta * Math.log(random()) >= hit.ttl * 1000

/** A reload of a slot's value, as a read's `load` is. */
type Reload = Effect.Effect<Option.Option<string>, unknown>

export interface RefreshAheadOptions {
  readonly cache: Cache["Type"]
  /** CACHE_REFRESH_AHEAD: off, no hit reloads its entry. */
  readonly enabled: boolean
  /** A load under the lease `claim` took, filling the slot: the single flight's, so misses meanwhile join it. */
  readonly load: (slot: Slot, stamp: string, lease: string, load: Reload) => Reload
  readonly runFork: (effect: Effect.Effect<void>) => unknown
}

/**
 * Reloads a hit's entry before it expires when the draw says so. The reload runs in the background under the fill
 * lease, unless another reader (here or elsewhere) holds it; a hot key's hits in this process start at most one.
 */
export const make = ({ cache, enabled, load, runFork }: RefreshAheadOptions) => {
  const refreshing = new Set<string>()

  const start = (slot: Slot, reload: Reload) => {
    if (refreshing.has(slot.key)) return
    refreshing.add(slot.key)
    cacheRefreshes.unsafeUpdate(1, noLabels)
    runFork(
      cache.claim(slot).pipe(
        Effect.flatMap(({ lease, stamp }) =>
          lease === null ? Effect.void : Effect.asVoid(load(slot, stamp, lease, reload))
        ),
        Effect.catchAll((error) =>
          // The entry stays until its TTL; the next miss loads it as usual.
          Effect.logDebug("refresh ahead failed", error)
        ),
        Effect.ensuring(Effect.sync(() => refreshing.delete(slot.key)))
      )
    )
  }

  /**
   * One draw for each of `reads` reads of the hit, as each would draw alone: with one draw for a hot key read by
   * many in a batch, refreshes began too late and the key missed at expiry.
   */
  return (slot: Slot, hit: Remaining, reload: Reload, reads: number): void => {
    if (!enabled) return
    for (let draw = 0; draw < reads; draw++) {
      if (isDue(hit)) return start(slot, reload)
    }
  }
}
