import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Layer, TestClock } from "effect"
import type { Scope } from "effect"
import { Cache } from "../src/Cache.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import * as RedisCache from "../src/Cache/Redis.js"
import * as RedisServer from "./support/RedisServer.js"

// One contract, every backend: the service relies on these semantics, not on Redis or a Map.

interface Backend {
  readonly name: string
  readonly cache: Effect.Effect<Cache["Type"], never, Scope.Scope>
  /** Lets `ms` of cache time pass. */
  readonly elapse: (ms: number) => Effect.Effect<void>
}

// Built in the test's scope: the service must not outlive its layer (the Redis connection closes with it).
const build = <E>(layer: Layer.Layer<Cache, E>) => Effect.map(Layer.build(layer), Context.get(Cache))

const redisLayer = (url: string) =>
  RedisCache.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["REDIS_URL", url]])))))

const memory: Backend = {
  name: "memory",
  cache: build(MemoryCache.layer),
  elapse: (ms) => TestClock.adjust(Duration.millis(ms))
}

const redis: Backend = {
  name: "redis",
  cache: Effect.gen(function* () {
    const server = yield* RedisServer.make()
    return yield* build(redisLayer(server.url))
  }).pipe(Effect.orDie),
  elapse: (ms) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))
}

const ttl = Duration.millis(300)

for (const backend of [memory, redis]) {
  describe(`Cache contract: ${backend.name}`, () => {
    it.scoped("a miss hands out the guard's stamp; a fill with it stores the entry; the next lookup hits", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const miss = yield* cache.lookup("p:id:1", "p:guard:id:1")
        expect(miss._tag).toBe("Miss")
        if (miss._tag !== "Miss") return
        const stored = yield* cache.fill({ key: "p:id:1", value: "v1", ttl, guard: "p:guard:id:1", stamp: miss.stamp })
        expect(stored).toBe(true)
        expect(yield* cache.lookup("p:id:1", "p:guard:id:1")).toEqual({ _tag: "Hit", value: "v1" })
      })
    )

    it.scoped("concurrent misses share the stamp, so each of their fills is accepted", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const a = yield* cache.lookup("p:id:1", "p:guard:id:1")
        const b = yield* cache.lookup("p:id:1", "p:guard:id:1")
        expect(a).toEqual(b)
      })
    )

    it.scoped("a fill with a stamp the guard does not hold is refused and stores nothing", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* cache.lookup("p:id:1", "p:guard:id:1")
        const stored = yield* cache.fill({ key: "p:id:1", value: "v1", ttl, guard: "p:guard:id:1", stamp: "forged" })
        expect(stored).toBe(false)
        expect((yield* cache.lookup("p:id:1", "p:guard:id:1"))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidate between a miss and its fill voids the fill (the read-write race)", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const miss = yield* cache.lookup("p:id:1", "p:guard:id:1")
        if (miss._tag !== "Miss") return expect.fail("expected a miss")
        yield* cache.invalidate(["p:id:1"], ["p:guard:id:1"])
        const stored = yield* cache.fill({ key: "p:id:1", value: "old", ttl, guard: "p:guard:id:1", stamp: miss.stamp })
        expect(stored).toBe(false)
        const next = yield* cache.lookup("p:id:1", "p:guard:id:1")
        expect(next._tag).toBe("Miss")
        if (next._tag === "Miss") expect(next.stamp).not.toBe(miss.stamp)
      })
    )

    it.scoped("invalidate deletes the keys and counts only those that existed", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        for (const id of ["1", "2"]) {
          const miss = yield* cache.lookup(`p:id:${id}`, `p:guard:id:${id}`)
          if (miss._tag === "Miss")
            yield* cache.fill({ key: `p:id:${id}`, value: id, ttl, guard: `p:guard:id:${id}`, stamp: miss.stamp })
        }
        const removed = yield* cache.invalidate(["p:id:1", "p:id:2", "p:id:3"], ["p:guard:id:1"])
        expect(removed).toBe(2)
        expect((yield* cache.lookup("p:id:1", "p:guard:id:1"))._tag).toBe("Miss")
        expect((yield* cache.lookup("p:id:2", "p:guard:id:2"))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidateMatching removes every matching key, leaves the others, and moves the guard", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const fill = (key: string, guard: string) =>
          Effect.flatMap(cache.lookup(key, guard), (miss) =>
            miss._tag === "Miss"
              ? cache.fill({ key, value: key, ttl: Duration.seconds(30), guard, stamp: miss.stamp })
              : Effect.succeed(false)
          )
        for (let page = 0; page < 25; page++) yield* fill(`p:list:${page * 20}:20`, "p:guard:list")
        yield* fill("p:id:7", "p:guard:id:7")
        yield* fill("other:list:0:20", "other:guard:list")
        const pending = yield* cache.lookup("p:list:999:20", "p:guard:list")

        expect(yield* cache.invalidateMatching("p:list:*", "p:guard:list")).toBe(25)

        expect((yield* cache.lookup("p:list:0:20", "p:guard:list"))._tag).toBe("Miss")
        expect(yield* cache.lookup("p:id:7", "p:guard:id:7")).toEqual({ _tag: "Hit", value: "p:id:7" })
        expect(yield* cache.lookup("other:list:0:20", "other:guard:list")).toEqual({
          _tag: "Hit",
          value: "other:list:0:20"
        })
        if (pending._tag !== "Miss") return expect.fail("expected a miss")
        const late = { key: "p:list:999:20", value: "old", ttl, guard: "p:guard:list", stamp: pending.stamp }
        expect(yield* cache.fill(late)).toBe(false)
      })
    )

    it.scoped("an entry expires after its ttl", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const miss = yield* cache.lookup("p:id:1", "p:guard:id:1")
        if (miss._tag !== "Miss") return expect.fail("expected a miss")
        yield* cache.fill({ key: "p:id:1", value: "v1", ttl, guard: "p:guard:id:1", stamp: miss.stamp })
        yield* backend.elapse(150)
        expect((yield* cache.lookup("p:id:1", "p:guard:id:1"))._tag).toBe("Hit")
        yield* backend.elapse(250)
        expect((yield* cache.lookup("p:id:1", "p:guard:id:1"))._tag).toBe("Miss")
      })
    )

    it.scoped("ping succeeds while the cache answers", () => Effect.flatMap(backend.cache, (cache) => cache.ping))
  })
}

describe("Cache contract: redis specifics", () => {
  it.scoped("keys are plain Redis strings with a PX ttl no longer than asked, and guards expire too", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const miss = yield* cache.lookup("product:id:1", "product:guard:id:1")
      if (miss._tag !== "Miss") return expect.fail("expected a miss")
      yield* cache.fill({
        key: "product:id:1",
        value: '{"id":1}',
        ttl: Duration.seconds(60),
        guard: "product:guard:id:1",
        stamp: miss.stamp
      })
      expect(yield* server.command("GET", "product:id:1")).toBe('{"id":1}')
      const pttl = Number(yield* server.command("PTTL", "product:id:1"))
      expect(pttl).toBeGreaterThan(55_000)
      expect(pttl).toBeLessThanOrEqual(60_000)
      expect(Number(yield* server.command("PTTL", "product:guard:id:1"))).toBeGreaterThan(0)
    }).pipe(Effect.orDie)
  )

  it.scoped("a stopped Redis makes every operation fail fast with a CacheError", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      yield* server.stop
      const started = Date.now()
      const results = yield* Effect.all(
        [
          Effect.flip(cache.lookup("p:id:1", "p:guard:id:1")),
          Effect.flip(cache.fill({ key: "k", value: "v", ttl, guard: "g", stamp: "s" })),
          Effect.flip(cache.invalidate(["k"], ["g"])),
          Effect.flip(cache.invalidateMatching("p:list:*", "p:guard:list")),
          Effect.flip(cache.ping)
        ],
        { concurrency: "unbounded" }
      )
      expect(results.map((error) => error._tag)).toEqual(Array(5).fill("CacheError"))
      expect(results.map((error) => error.op)).toEqual(["lookup", "fill", "invalidate", "invalidate", "ping"])
      expect(Date.now() - started).toBeLessThan(1000)
    }).pipe(Effect.orDie)
  )
})
