import { Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.js"
import * as CircuitBreaker from "./Cache/CircuitBreaker.js"
import * as MemoryCache from "./Cache/Memory.js"
import * as RedisCache from "./Cache/Redis.js"

/** Redis behind a circuit breaker: what production runs. */
export const RedisLive = CircuitBreaker.layer(RedisCache.layer)

/** The backend `CACHE_BACKEND` names. */
export const CacheLive = Layer.unwrapEffect(
  Effect.map(AppConfig.cacheBackend, (backend) => (backend === "memory" ? MemoryCache.layer : RedisLive))
)
