import { Duration, Effect } from "effect"
import type { Option } from "effect"
import type { Cache, Slot } from "../Cache.js"
import type { Invalidations } from "./Invalidations.js"
import type { Served } from "./Served.js"
import { servedOf } from "./Served.js"
import type { CacheStats } from "./Stats.js"

export interface GraceOptions {
  readonly cache: Cache["Type"]
  readonly stats: CacheStats
  readonly invalidations: Invalidations["Type"]
  /** CACHE_GRACE: how long a fallback copy outlives its entry; zero, none is kept or served. */
  readonly grace: Duration.Duration
}

/**
 * A miss's answer once its load is done: the value, or `absent`. With CACHE_GRACE, a read whose database load failed
 * answers with the slot's fallback copy, if a write has not removed it. A write removes the copy with the entry; one
 * whose removal could not reach the cache is pending, and a pending invalidation of `pendingKey` (asked again here:
 * it may have been recorded since the read began) forbids the copy. Otherwise the load's failure stands.
 */
export const make = ({ cache, grace, invalidations, stats }: GraceOptions) => {
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

  const afterLoad = <E, A>(
    _slot: Slot,
    _pendingKey: string,
    loaded: Effect.Effect<Option.Option<string>, E>,
    absent: () => Effect.Effect<never, A>
  ): Effect.Effect<Served, E | A> => Effect.flatMap(loaded, servedOf(absent))

  const afterLoadOrStale = <E, A>(
    slot: Slot,
    pendingKey: string,
    loaded: Effect.Effect<Option.Option<string>, E>,
    absent: () => Effect.Effect<never, A>
  ): Effect.Effect<Served, E | A> =>
    Effect.matchEffect(loaded, {
      onFailure: (failure) => orStale(slot, pendingKey, failure),
      onSuccess: servedOf(absent)
    })

  return Duration.toMillis(grace) > 0 ? afterLoadOrStale : afterLoad
}
