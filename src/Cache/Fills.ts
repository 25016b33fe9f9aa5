import { Duration, Effect, Option } from "effect"
import type { Cache, Fill, Slot } from "../Cache.js"
import type { CacheStats } from "./Stats.js"

/** A load's value (none: nothing to load) for `slot`, under the stamp its miss saw and the lease it holds, if any. */
export interface Loaded {
  readonly slot: Slot
  readonly stamp: string
  readonly lease: string | null
  readonly value: Option.Option<string>
}

export interface FillsOptions {
  readonly cache: Cache["Type"]
  readonly stats: CacheStats
  readonly ttl: Duration.Duration
  readonly grace: Duration.Duration
}

/** What a load leaves in the cache: its value for at most CACHE_TTL, or a brief "not found"; each stored value a set. */
export const make = ({ cache, grace, stats, ttl }: FillsOptions) => {
  // Entries filled together must not expire together; jitter only shortens, so no entry outlives CACHE_TTL.
  const ttlMillis = Duration.toMillis(ttl)
  const jitteredTtl = () => Duration.millis(Math.max(1, Math.floor(ttlMillis * (1 - Math.random() * 0.1))))
  // A "not found" is remembered only briefly: long enough to absorb a storm of reads for a missing id.
  const absentTtl = Duration.millis(Math.max(1, Math.min(5_000, Math.floor(ttlMillis / 10))))

  /** `load`: microseconds the load took, kept with the entry for refresh ahead. */
  const fillOf = ({ lease, stamp, value }: Loaded, load: number): Fill => ({
    stamp,
    lease,
    value: Option.getOrNull(value),
    ttl: Option.isSome(value) ? jitteredTtl() : absentTtl,
    load,
    grace
  })

  const fill = (loaded: Loaded, load: number): Effect.Effect<void> =>
    cache.fill(loaded.slot, fillOf(loaded, load)).pipe(
      Effect.flatMap((stored) => (stored && Option.isSome(loaded.value) ? stats.set : Effect.void)),
      Effect.catchTag("CacheError", stats.error)
    )

  /** `fill` of every load given, in one step; on a failure, one error each, as if each had filled alone. */
  const fillMany = (loads: ReadonlyArray<Loaded>, load: number): Effect.Effect<void> =>
    cache.fillMany(loads.map((loaded) => [loaded.slot, fillOf(loaded, load)] as const)).pipe(
      Effect.flatMap((stored) =>
        stats.tally({ sets: stored.filter((one, i) => one && Option.isSome(loads[i]!.value)).length })
      ),
      Effect.catchTag("CacheError", (error) => Effect.forEach(loads, () => stats.error(error), { discard: true }))
    )

  return { fill, fillMany } as const
}
