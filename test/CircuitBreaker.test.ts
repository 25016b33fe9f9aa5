import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, TestClock } from "effect"
import { Cache } from "../src/Cache.js"
import * as CircuitBreaker from "../src/Cache/CircuitBreaker.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import { makeSwitchableCache } from "./support/Fakes.js"

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
