import { Effect, Layer } from "effect"
import type { CacheError, CacheOperation } from "../Cache.js"
import * as Cluster from "../Cluster.js"
import { cacheOperations, labels } from "../Metrics.js"
import type { Labels } from "../Metrics.js"

const cacheSeries = (operation: CacheOperation, outcome: string) => labels({ operation, outcome })

const perOperation = (outcome: string): Record<CacheOperation, Labels> => ({
  lookup: cacheSeries("lookup", outcome),
  fill: cacheSeries("fill", outcome),
  invalidate: cacheSeries("invalidate", outcome),
  ping: cacheSeries("ping", outcome),
  stale: cacheSeries("stale", outcome),
  claim: cacheSeries("claim", outcome)
})

/** The series of `cache_operations_total` these counters count into, each label array built once (Metrics.ts). */
export const cacheSeriesOf = {
  hit: cacheSeries("lookup", "hit"),
  miss: cacheSeries("lookup", "miss"),
  set: cacheSeries("fill", "set"),
  delete: cacheSeries("invalidate", "delete"),
  /** A read answered with a fallback copy because the database failed (CACHE_GRACE). */
  stale: cacheSeries("stale", "hit"),
  error: perOperation("error"),
  skipped: perOperation("skipped")
} as const

// Registered up front so a scrape shows every series, at zero, before the first request.
for (const series of [
  cacheSeriesOf.hit,
  cacheSeriesOf.miss,
  cacheSeriesOf.set,
  cacheSeriesOf.delete,
  cacheSeriesOf.stale,
  ...Object.values(cacheSeriesOf.error),
  ...Object.values(cacheSeriesOf.skipped)
]) {
  cacheOperations.unsafeValue(series)
}

const seriesOfError = (error: CacheError) =>
  error.reason === "skipped" ? cacheSeriesOf.skipped[error.op] : cacheSeriesOf.error[error.op]

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

/** Adds up the counters of several processes (WORKERS=N). */
export const sum = (parts: ReadonlyArray<CacheStatsSnapshot>): CacheStatsSnapshot => {
  const total = { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 }
  let stale = 0
  for (const part of parts) {
    total.hits += part.hits
    total.misses += part.misses
    total.sets += part.sets
    total.deletes += part.deletes
    total.errors += part.errors
    stale += part.stale
  }
  const gets = total.hits + total.misses
  return { ...total, hit_rate: gets === 0 ? 0 : total.hits / gets, total_gets: gets, stale }
}

/** This process's counters, and the calls that count into them (and into `cache_operations_total`). */
const counters = () => {
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
  /** The outcomes of reads: one each for a lone read, many at once for a batch of them. */
  const tally = (counts: { readonly hits?: number; readonly misses?: number; readonly sets?: number }) =>
    Effect.sync(() => {
      const { hits: hit = 0, misses: missed = 0, sets: stored = 0 } = counts
      hits += hit
      misses += missed
      sets += stored
      if (hit > 0) cacheOperations.unsafeUpdate(hit, cacheSeriesOf.hit)
      if (missed > 0) cacheOperations.unsafeUpdate(missed, cacheSeriesOf.miss)
      if (stored > 0) cacheOperations.unsafeUpdate(stored, cacheSeriesOf.set)
    })
  return {
    snapshot,
    reset,
    counting: {
      hit: tally({ hits: 1 }),
      miss: tally({ misses: 1 }),
      set: tally({ sets: 1 }),
      tally,
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
        })
    }
  }
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
    const local = counters()
    return { ...local.counting, snapshot: Effect.sync(local.snapshot), reset: Effect.sync(local.reset) }
  }
}) {}

const gatherTopic = "cache-stats"
const resetTopic = "cache-stats:reset"

/**
 * The counters of a worker under WORKERS=N: each worker counts its own requests, and the endpoint answers for all of
 * them, gathered through the primary (Cluster.ts); a reset zeroes every worker's. A primary that does not answer
 * (busy or gone) leaves this worker answering for itself rather than hanging.
 */
export const layerClustered = Layer.scoped(
  CacheStats,
  Effect.gen(function* () {
    const local = counters()
    yield* Effect.acquireRelease(
      Effect.sync(() => [
        Cluster.answerGathers(gatherTopic, local.snapshot),
        Cluster.answerGathers(resetTopic, local.reset)
      ]),
      (stops) => Effect.sync(() => stops.forEach((stop) => stop()))
    )
    const gathered = (topic: string, fallback: () => CacheStatsSnapshot) =>
      Cluster.gather(topic).pipe(
        Effect.timeout("2 seconds"),
        Effect.map((parts) => sum(parts as ReadonlyArray<CacheStatsSnapshot>)),
        Effect.orElseSucceed(fallback)
      )
    return CacheStats.make({
      ...local.counting,
      snapshot: gathered(gatherTopic, local.snapshot),
      reset: gathered(resetTopic, local.reset)
    })
  })
)
