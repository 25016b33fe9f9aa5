import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Layer, TestClock } from "effect"
import { Cache } from "../src/Cache.js"
import * as CircuitBreaker from "../src/Cache/CircuitBreaker.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import { RedisLive } from "../src/Services.js"
import * as Databases from "./support/Databases.js"
import { makeSwitchableCache } from "./support/Fakes.js"
import * as RedisServer from "./support/RedisServer.js"

const options: CircuitBreaker.CircuitBreakerOptions = {
  failureThreshold: 3,
  cooldownMillis: 1_000,
  maxCooldownMillis: 4_000
}

/** A breaker over a switchable cache that counts the calls that reached it. */
const setup = Effect.gen(function* () {
  const memory = yield* Effect.map(Layer.build(MemoryCache.layer), Context.get(Cache))
  let reached = 0
  const counted = Cache.of({
    ...memory,
    ping: Effect.suspend(() => {
      reached++
      return memory.ping
    })
  })
  const switchable = makeSwitchableCache(counted)
  const breaker = CircuitBreaker.make(switchable.cache, options)
  return { breaker, setDown: switchable.setDown, reached: () => reached }
})

describe("CircuitBreaker", () => {
  it.scoped("opens after consecutive failures and then refuses without calling the cache", () =>
    Effect.gen(function* () {
      const { breaker, reached, setDown } = yield* setup
      yield* setDown(true)
      for (let i = 0; i < 3; i++) yield* Effect.flip(breaker.cache.ping)
      expect(breaker.state()).toBe("open")
      yield* setDown(false)
      const refused = yield* Effect.flip(breaker.cache.ping)
      expect(refused._tag).toBe("CacheError")
      expect(refused.op).toBe("ping")
      expect(reached()).toBe(0)
    })
  )

  it.scoped("a success resets the failure count", () =>
    Effect.gen(function* () {
      const { breaker, setDown } = yield* setup
      yield* setDown(true)
      yield* Effect.flip(breaker.cache.ping)
      yield* Effect.flip(breaker.cache.ping)
      yield* setDown(false)
      yield* breaker.cache.ping
      yield* setDown(true)
      yield* Effect.flip(breaker.cache.ping)
      yield* Effect.flip(breaker.cache.ping)
      expect(breaker.state()).toBe("closed")
    })
  )

  it.scoped("after the cooldown one probe goes through; success closes the circuit", () =>
    Effect.gen(function* () {
      const { breaker, reached, setDown } = yield* setup
      yield* setDown(true)
      for (let i = 0; i < 3; i++) yield* Effect.flip(breaker.cache.ping)
      yield* setDown(false)
      yield* TestClock.adjust(Duration.millis(999))
      yield* Effect.flip(breaker.cache.ping)
      expect(reached()).toBe(0)
      yield* TestClock.adjust(Duration.millis(1))
      yield* breaker.cache.ping
      expect(reached()).toBe(1)
      expect(breaker.state()).toBe("closed")
    })
  )

  it.scoped("a failed probe reopens the circuit with a doubled cooldown, up to the maximum", () =>
    Effect.gen(function* () {
      const { breaker, setDown } = yield* setup
      yield* setDown(true)
      for (let i = 0; i < 3; i++) yield* Effect.flip(breaker.cache.ping)
      const probeAfter = (millis: number) =>
        Effect.zipRight(TestClock.adjust(Duration.millis(millis)), Effect.flip(breaker.cache.ping))
      yield* probeAfter(1_000) // fails: next cooldown 2 s
      expect(breaker.state()).toBe("open")
      yield* setDown(false)
      yield* probeAfter(1_999)
      expect(breaker.state()).toBe("open")
      yield* TestClock.adjust(Duration.millis(1))
      yield* breaker.cache.ping
      expect(breaker.state()).toBe("closed")
    })
  )
})

describe("the circuit breaker as production wires it (RedisLive, CircuitBreaker.defaults)", () => {
  const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

  it.scoped("opens after 5 failures in a row, probes after 500 ms, doubling to at most 2 s, closes on a success", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      yield* server.stop
      const database = yield* Databases.make
      const config = ConfigProvider.fromMap(new Map(Object.entries({ REDIS_URL: server.url, ...database.env })))
      const cache = yield* Effect.map(
        Layer.build(RedisLive.pipe(Layer.provide(Layer.setConfigProvider(config)))),
        Context.get(Cache)
      )
      // true when the ping reached Redis (and failed there), false when the open circuit skipped it.
      const reached = Effect.map(Effect.flip(cache.ping), (error) => error.reason !== "skipped")

      for (let failure = 1; failure <= 5; failure++) expect(yield* reached, `failure ${failure}`).toBe(true)
      expect(yield* reached).toBe(false)
      for (const cooldown of [500, 1_000, 2_000, 2_000]) {
        yield* TestClock.adjust(Duration.millis(cooldown - 1))
        expect(yield* reached, `${cooldown - 1} ms into a ${cooldown} ms cooldown`).toBe(false)
        yield* TestClock.adjust(Duration.millis(1))
        expect(yield* reached, `the probe after ${cooldown} ms`).toBe(true)
        expect(yield* reached, `after the probe of ${cooldown} ms failed`).toBe(false)
      }

      // Redis is back once ioredis has reconnected, in its own (real) time; a probe every cooldown finds out.
      yield* server.start
      let closed = false
      for (let probe = 0; probe < 100 && !closed; probe++) {
        yield* TestClock.adjust(Duration.millis(2_000))
        closed = Either.isRight(yield* Effect.either(cache.ping))
        if (!closed) yield* sleep(50)
      }
      expect(closed).toBe(true)
      for (let i = 0; i < 10; i++) yield* cache.ping
    })
  )
})
