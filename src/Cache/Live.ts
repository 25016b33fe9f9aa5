import { Effect, Layer } from "effect"
import * as AppConfig from "../AppConfig.js"
import * as CacheEpochs from "../Database/CacheEpochs.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as MemoryCache from "./Memory.js"
import * as Observed from "./Observed.js"
import * as RedisCache from "./Redis.js"

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
