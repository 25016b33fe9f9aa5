import { Effect } from "effect"
import type { Cache, CacheError, Index, Removal, Slot } from "../Cache.js"
import type { Invalidations } from "./Invalidations.js"
import type { CacheStats } from "./Stats.js"

/** What a write removes from the cache, and the key its pending record is kept under while the cache is away. */
export interface Invalidation {
  readonly key: string
  /** What it removes, for `invalidate` to send with others in one step. */
  readonly removal: Removal
  /** Removes the entries; how many existed. */
  readonly apply: Effect.Effect<number, CacheError>
}

export interface InvalidationOptions {
  readonly cache: Cache["Type"]
  readonly stats: CacheStats
  readonly invalidations: Invalidations["Type"]
}

/** What a write removes, sent to the cache, or recorded as pending (Invalidations.ts) when the cache cannot take it. */
export const make = ({ cache, invalidations, stats }: InvalidationOptions) => {
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

  return { entry, indexed, invalidate, invalidationOf, pendingKeyOf, settle } as const
}
