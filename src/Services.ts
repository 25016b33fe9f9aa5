import { Effect, Layer } from "effect"
import cluster from "node:cluster"
import * as AppConfig from "./AppConfig.js"
import * as CircuitBreaker from "./Cache/CircuitBreaker.js"
import type { Invalidations } from "./Cache/Invalidations.js"
import * as MemoryCache from "./Cache/Memory.js"
import * as Observed from "./Cache/Observed.js"
import { ReadThrough } from "./Cache/ReadThrough.js"
import * as RedisCache from "./Cache/Redis.js"
import * as CacheStats from "./Cache/Stats.js"
import { Database } from "./Database.js"
import * as CacheEpochs from "./Database/CacheEpochs.js"
import * as SharedInvalidations from "./Database/SharedInvalidations.js"
import { ProductRepo } from "./ProductRepo.js"
import { ProductService } from "./ProductService.js"

// The service graph, assembled here only: main.ts runs `Live` over `CacheLive`, test/support/TestApp.ts the same
// over a cache of the test's choosing, test/support/ProductServiceHarness.ts `layer` over in-memory fakes. Here, not
// in Cache/, because the Redis backend keeps its epochs in the database.

/**
 * Redis behind a circuit breaker: what production runs, its epochs kept in the database every instance shares.
 * Observed outermost, so a skipped operation shows as such.
 */
export const RedisLive = Observed.layer(
  CircuitBreaker.layer(RedisCache.layerConfig.pipe(Layer.provide(CacheEpochs.layer)))
)

export const MemoryLive = Observed.layer(MemoryCache.layer)

/** The backend `CACHE_BACKEND` names. */
export const CacheLive = Layer.unwrapEffect(
  Effect.map(AppConfig.cacheBackend, (backend) => (backend === "memory" ? MemoryLive : RedisLive))
)

/**
 * ProductService over the read-through engine and the parts given, which it exposes too (HTTP reads the counters,
 * a test its fakes). The invalidations are built first: the engine and the service both lean on them.
 */
export const layer = <E1, R1, E2, R2, E3, R3>(parts: {
  readonly repo: Layer.Layer<ProductRepo, E1, R1>
  readonly stats: Layer.Layer<CacheStats.CacheStats, E2, R2>
  readonly invalidations: Layer.Layer<Invalidations, E3, R3>
}) =>
  ProductService.DefaultWithoutDependencies.pipe(
    Layer.provide(ReadThrough.Default),
    Layer.provideMerge(Layer.merge(parts.repo, parts.stats)),
    Layer.provideMerge(parts.invalidations)
  )

// Under WORKERS=N a worker's counters answer for every worker (Cluster.ts gathers them through the primary).
const StatsLive = cluster.isWorker ? CacheStats.layerClustered : CacheStats.CacheStats.Default

/**
 * Production's parts over `repo` (a test may wrap the SQL repository, to slow it down), and the database's write
 * state that /health reports. One instance each (layers are memoized by reference): the stats the API reports are
 * the service's own counts.
 */
export const live = <E, R>(repo: Layer.Layer<ProductRepo, E, R>) =>
  layer({ repo, stats: StatsLive, invalidations: SharedInvalidations.layer }).pipe(Layer.provideMerge(Database.Default))

/** What the service runs; it needs a cache (`CacheLive`). */
export const Live = live(ProductRepo.Default)
