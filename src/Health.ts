import { Effect } from "effect"
import * as AppConfig from "./AppConfig.js"
import { Cache } from "./Cache.js"
import type { CacheTopology } from "./Cache.js"
import { Database } from "./Database.js"
import type { WriteState } from "./Database.js"
import { ProductRepo } from "./ProductRepo.js"

export interface HealthReport {
  readonly status: "healthy" | "degraded" | "unhealthy"
  readonly database: "up" | "down"
  readonly cache: "up" | "down"
  readonly writes: WriteState
  readonly topology: CacheTopology
}

/**
 * What `/health` (and the dashboard's badge) reports. Both checks are bounded, so it answers promptly even while
 * Redis hangs.
 *
 * Writes held up by another process's lock, or failing (a full disk), while the products can still be read: the
 * database is "up" (the contract's "down" means 503, and an orchestrator would restart an instance that cannot help
 * it), the answer is "degraded", and `writes` says why.
 */
export const make = Effect.gen(function* () {
  const cache = yield* Cache
  const repo = yield* ProductRepo
  const database = yield* Database
  const cacheTimeout = yield* AppConfig.cacheTimeout
  const up = <E>(check: Effect.Effect<void, E>) =>
    check.pipe(
      Effect.timeout(cacheTimeout),
      Effect.as("up" as const),
      Effect.orElseSucceed(() => "down" as const)
    )
  return Effect.map(
    Effect.all([up(repo.ping), up(cache.ping), database.writes, cache.topology], { concurrency: 3 }),
    ([reads, cacheCheck, writes, topology]): HealthReport => ({
      status: reads === "down" ? "unhealthy" : cacheCheck === "down" || writes !== "ok" ? "degraded" : "healthy",
      database: reads,
      cache: cacheCheck,
      writes,
      topology
    })
  )
})
