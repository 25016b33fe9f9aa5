import { Effect } from "effect"
import type { CacheError } from "../Cache.js"
import { CircuitOpen } from "../Cache.js"
import * as Cluster from "../Cluster.js"
import type { CacheOperation } from "../Metrics.js"
import { cacheOperations, cacheSeriesOf } from "../Metrics.js"

const seriesOfError = (error: CacheError) => {
  const op = error.op as CacheOperation
  const series = error.cause instanceof CircuitOpen ? cacheSeriesOf.skipped[op] : cacheSeriesOf.error[op]
  return series ?? cacheSeriesOf.unknownError
}

export interface CacheStatsSnapshot {
  readonly hits: number
  readonly misses: number
  readonly sets: number
  readonly deletes: number
  readonly errors: number
  readonly hit_rate: number
  readonly total_gets: number
  /** Reads answered with a fallback copy because the database failed (CACHE_GRACE); each was also a miss. */
  readonly stale: number
}

/**
 * The counters behind `/api/v1/cache/stats`, counted as the contract says (see ProductService).
 *
 * Each call also counts into `cache_operations_total`, so the endpoint and the metrics never disagree. The numbers
 * here are per instance and `reset` zeroes them; the metric counters are process-wide and only grow, as Prometheus
 * requires of counters (it handles restarts, not resets): after a reset the endpoint counts from zero while
 * `rate()` over the metrics goes on undisturbed.
 */
export class CacheStats extends Effect.Service<CacheStats>()("CacheStats", {
  sync: () => {
    // Plain numbers: increments happen on the hot path and JavaScript runs them one at a time.
    let hits = 0
    let misses = 0
    let sets = 0
    let deletes = 0
    let errors = 0
    let stale = 0
    const snapshot = (): CacheStatsSnapshot => {
      const total = hits + misses
      return {
        hits,
        misses,
        sets,
        deletes,
        errors,
        hit_rate: total === 0 ? 0 : hits / total,
        total_gets: total,
        stale
      }
    }
    const reset = () => {
      hits = misses = sets = deletes = errors = stale = 0
      return snapshot()
    }
    Cluster.answerCollections((zero) => (zero ? reset() : snapshot()))
    return {
      hit: Effect.sync(() => {
        hits++
        cacheOperations.unsafeUpdate(1, cacheSeriesOf.hit)
      }),
      miss: Effect.sync(() => {
        misses++
        cacheOperations.unsafeUpdate(1, cacheSeriesOf.miss)
      }),
      set: Effect.sync(() => {
        sets++
        cacheOperations.unsafeUpdate(1, cacheSeriesOf.set)
      }),
      stale: Effect.sync(() => {
        stale++
        cacheOperations.unsafeUpdate(1, cacheSeriesOf.stale)
      }),
      deleted: (count: number) =>
        Effect.sync(() => {
          deletes += count
          cacheOperations.unsafeUpdate(count, cacheSeriesOf.delete)
        }),
      /** One cache operation that could not be done; the metric says which, and whether the open circuit skipped it. */
      error: (error: CacheError) =>
        Effect.sync(() => {
          errors++
          cacheOperations.unsafeUpdate(1, seriesOfError(error))
        }),
      // Under WORKERS=N each worker counts its own requests: the endpoint answers for all of them (Cluster.ts).
      // A primary that does not answer (busy or gone) leaves this worker answering for itself rather than hanging.
      snapshot: Cluster.isWorker()
        ? Effect.orElseSucceed(Effect.timeout(Cluster.askPrimary(false), "2 seconds"), snapshot)
        : Effect.sync(snapshot),
      reset: Cluster.isWorker()
        ? Effect.orElseSucceed(Effect.timeout(Cluster.askPrimary(true), "2 seconds"), reset)
        : Effect.sync(reset)
    }
  }
}) {}
