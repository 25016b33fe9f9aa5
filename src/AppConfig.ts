import { Config, Either } from "effect"
import { availableParallelism } from "node:os"
import { invalid, validateNamed } from "./AppConfig/Parse.js"
import * as Cache from "./AppConfig/Cache.js"
import * as Database from "./AppConfig/Database.js"
import * as Http from "./AppConfig/Http.js"
import * as Redis from "./AppConfig/Redis.js"
import * as Telemetry from "./AppConfig/Telemetry.js"

// Every variable of the contract, parsed once at the edge; a bad value stops the start naming the variable. One
// module per concern (AppConfig/), read through this one.

export * from "./AppConfig/Cache.js"
export * from "./AppConfig/Database.js"
export * from "./AppConfig/Http.js"
export * from "./AppConfig/Redis.js"
export * from "./AppConfig/Telemetry.js"

/**
 * `WORKERS=N` serves with N processes on one port (Node's cluster module); 1, the default, is one process; `auto` is
 * one per core the process may use (`os.availableParallelism()`).
 */
export const workers = Config.string("WORKERS").pipe(
  Config.withDefault("1"),
  Config.mapOrFail((text) => {
    const count = text.trim() === "auto" ? availableParallelism() : /^[0-9]{1,2}$/.test(text.trim()) ? Number(text) : 0
    return count >= 1 && count <= 64
      ? Either.right(count)
      : Either.left(invalid("WORKERS", `must be auto or an integer from 1 to 64, got ${JSON.stringify(text)}`))
  })
)

/** The two together: separate processes can only share a cache that lives outside them. */
const workersWithSharedCache = Config.all([workers, Cache.cacheBackend]).pipe(
  validateNamed(
    "WORKERS",
    "WORKERS above 1 needs CACHE_BACKEND=redis: an in-memory cache is per process, so invalidations would not reach the others",
    ([count, backend]: readonly [number, "redis" | "memory"]) => count === 1 || backend === "redis"
  )
)

/** Every variable at once, so a bad value stops the start before any connection is opened, each one reported. */
export const all = Config.all([
  Cache.cacheTtl,
  Cache.cacheGrace,
  Cache.cacheRefreshAhead,
  Cache.cachePrefix,
  Cache.cacheBackend,
  Cache.cacheTimeout,
  Cache.cacheMaxPages,
  Redis.redisConnection,
  Redis.redisTopology,
  Database.dbPath,
  Database.dbBusyTimeout,
  Database.database,
  Http.httpPort,
  Http.httpServer,
  Telemetry.serviceName,
  Telemetry.logFormat,
  Telemetry.logLevel,
  Telemetry.logRequests,
  workersWithSharedCache,
  Telemetry.otlpEndpoint,
  Http.dashboardMaxFeeds
])
