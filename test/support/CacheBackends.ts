import { Clock, ConfigProvider, Context, Duration, Effect, Layer, TestClock } from "effect"
import type { Scope } from "effect"
import { Cache } from "../../src/Cache.js"
import type { Lookup, Slot } from "../../src/Cache.js"
import * as CacheEpoch from "../../src/Cache/Epoch.js"
import * as CacheKeys from "../../src/Cache/Keys.js"
import * as MemoryCache from "../../src/Cache/Memory.js"
import * as RedisCache from "../../src/Cache/Redis.js"
import type { ProductId } from "../../src/Domain/Product.js"
import * as RedisServer from "./RedisServer.js"

// The backends the cache contract runs against, and the helpers of its suites (Cache.test.ts, RedisCache.test.ts).

export interface Backend {
  readonly name: string
  readonly cache: Effect.Effect<Cache["Type"], never, Scope.Scope>
  /** Lets `ms` of cache time pass. */
  readonly elapse: (ms: number) => Effect.Effect<void>
  /** The cache's own time, in milliseconds. */
  readonly now: Effect.Effect<number>
}

// Built in the test's scope: the service must not outlive its layer (the Redis connection closes with it).
export const build = <E>(layer: Layer.Layer<Cache, E>) =>
  Effect.orDie(Effect.map(Layer.build(layer), Context.get(Cache)))

export const redisLayer = (url: string, env: Record<string, string> = {}) =>
  RedisCache.layerConfig.pipe(
    Layer.provide(CacheEpoch.layerLocal),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ REDIS_URL: url, ...env })))))
  )

export const liveClock = Clock.make()

export const memory: Backend = {
  name: "memory",
  cache: build(MemoryCache.layer),
  elapse: (ms) => TestClock.adjust(Duration.millis(ms)),
  now: Clock.currentTimeMillis
}

export const redis: Backend = {
  name: "redis",
  cache: Effect.flatMap(RedisServer.make(), (server) => build(redisLayer(server.url))),
  elapse: (ms) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms))),
  now: Effect.sync(() => Date.now())
}

export const keys = CacheKeys.make("p:")
/** Keeps at most three list pages. */
export const bounded = CacheKeys.make("p:", { maxPages: 3 })
export const product = (id: number) => keys.product(id as ProductId)
export const ttl = Duration.millis(300)

export const miss = (found: Lookup) => {
  if (found._tag !== "Miss") throw new Error(`expected a miss, got ${found._tag}`)
  return found
}

/** Misses, then fills `value` with the stamp and lease the miss got. */
export const put = (cache: Cache["Type"], slot: Slot, value: string | null, time = ttl) =>
  Effect.flatMap(cache.lookup(slot), (found) => {
    const { lease, stamp } = miss(found)
    return cache.fill(slot, { stamp, lease, value, ttl: time })
  })
