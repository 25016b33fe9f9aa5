import { Effect } from "effect"

export interface CacheStatsSnapshot {
  readonly hits: number
  readonly misses: number
  readonly sets: number
  readonly deletes: number
  readonly errors: number
  readonly hit_rate: number
  readonly total_gets: number
}

/** The counters behind `/api/v1/cache/stats`, counted as the contract says (see ProductService). */
export class CacheStats extends Effect.Service<CacheStats>()("CacheStats", {
  sync: () => {
    // Plain numbers: increments happen on the hot path and JavaScript runs them one at a time.
    let hits = 0
    let misses = 0
    let sets = 0
    let deletes = 0
    let errors = 0
    const snapshot = (): CacheStatsSnapshot => {
      const total = hits + misses
      return { hits, misses, sets, deletes, errors, hit_rate: total === 0 ? 0 : hits / total, total_gets: total }
    }
    return {
      hit: Effect.sync(() => void hits++),
      miss: Effect.sync(() => void misses++),
      set: Effect.sync(() => void sets++),
      deleted: (count: number) => Effect.sync(() => void (deletes += count)),
      error: Effect.sync(() => void errors++),
      snapshot: Effect.sync(snapshot),
      reset: Effect.sync(() => {
        hits = misses = sets = deletes = errors = 0
        return snapshot()
      })
    }
  }
}) {}
