import { describe, expect, it } from "@effect/vitest"
import { Clock, ConfigProvider, Context, Duration, Effect, Layer, TestClock } from "effect"
import type { Scope } from "effect"
import { Cache } from "../src/Cache.js"
import type { CacheError, Lookup, Slot } from "../src/Cache.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import * as RedisCache from "../src/Cache/Redis.js"
import * as CacheKeys from "../src/CacheKeys.js"
import type { ProductId } from "../src/Domain/Product.js"
import * as RedisServer from "./support/RedisServer.js"

// One contract, every backend: the service relies on these semantics, not on Redis or a Map.

interface Backend {
  readonly name: string
  readonly cache: Effect.Effect<Cache["Type"], never, Scope.Scope>
  /** Lets `ms` of cache time pass. */
  readonly elapse: (ms: number) => Effect.Effect<void>
  /** The cache's own time, in milliseconds. */
  readonly now: Effect.Effect<number>
}

// Built in the test's scope: the service must not outlive its layer (the Redis connection closes with it).
const build = <E>(layer: Layer.Layer<Cache, E>) => Effect.orDie(Effect.map(Layer.build(layer), Context.get(Cache)))

const redisLayer = (url: string, env: Record<string, string> = {}) =>
  RedisCache.layer.pipe(
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ REDIS_URL: url, ...env })))))
  )

const liveClock = Clock.make()

const memory: Backend = {
  name: "memory",
  cache: build(MemoryCache.layer),
  elapse: (ms) => TestClock.adjust(Duration.millis(ms)),
  now: Clock.currentTimeMillis
}

const redis: Backend = {
  name: "redis",
  cache: Effect.flatMap(RedisServer.make(), (server) => build(redisLayer(server.url))),
  elapse: (ms) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms))),
  now: Effect.sync(() => Date.now())
}

const keys = CacheKeys.make("p:")
/** Keeps at most three list pages. */
const bounded = CacheKeys.make("p:", { maxPages: 3 })
const product = (id: number) => keys.product(id as ProductId)
const ttl = Duration.millis(300)

const miss = (found: Lookup) => {
  if (found._tag !== "Miss") throw new Error(`expected a miss, got ${found._tag}`)
  return found
}

/** Misses, then fills `value` with the stamp and lease the miss got. */
const put = (cache: Cache["Type"], slot: Slot, value: string | null, time = ttl) =>
  Effect.flatMap(cache.lookup(slot), (found) => {
    const { lease, stamp } = miss(found)
    return cache.fill(slot, { stamp, lease, value, ttl: time })
  })

for (const backend of [memory, redis]) {
  describe(`Cache contract: ${backend.name}`, () => {
    it.scoped("a miss hands out the guard's stamp; a fill with it stores the entry; the next lookup hits", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        expect(yield* put(cache, product(1), "v1")).toBe(true)
        expect(yield* cache.lookup(product(1))).toMatchObject({ _tag: "Hit", value: "v1" })
      })
    )

    it.scoped("the first miss takes the fill lease; later misses share the stamp but not the lease", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const first = miss(yield* cache.lookup(product(1)))
        const second = miss(yield* cache.lookup(product(1)))
        expect(first.lease).not.toBeNull()
        expect(second.lease).toBeNull()
        expect(second.stamp).toBe(first.stamp)
        // A reader without the lease may still fill with the same stamp (it waited, then loaded itself).
        expect(yield* cache.fill(product(1), { stamp: second.stamp, lease: null, value: "v", ttl })).toBe(true)
      })
    )

    it.scoped("a fill gives the lease back; an abandoned lease frees itself", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const first = miss(yield* cache.lookup(product(1)))
        yield* cache.fill(product(1), { stamp: "stale", lease: first.lease, value: "v", ttl })
        expect(miss(yield* cache.lookup(product(1))).lease).not.toBeNull()
        expect(miss(yield* cache.lookup(product(1))).lease).toBeNull()
        yield* backend.elapse(1_100)
        expect(miss(yield* cache.lookup(product(1))).lease).not.toBeNull()
      })
    )

    it.scoped("a lease taken under a stamp that a write has since moved is taken over, not waited for", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const holder = miss(yield* cache.lookup(product(1)))
        expect(holder.lease).not.toBeNull()
        yield* cache.invalidate([product(1).key], [product(1).guard]) // the holder's fill is void from here on
        const next = miss(yield* cache.lookup(product(1)))
        expect(next.stamp).not.toBe(holder.stamp)
        expect(next.lease).not.toBeNull()
        // The old holder's late fill neither stores nor frees the new lease.
        expect(yield* cache.fill(product(1), { ...holder, value: "old", ttl })).toBe(false)
        expect(miss(yield* cache.lookup(product(1))).lease).toBeNull()
      })
    )

    it.scoped("a fill with a stamp the guard does not hold is refused and stores nothing", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* cache.lookup(product(1))
        expect(yield* cache.fill(product(1), { stamp: "forged", lease: null, value: "v1", ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidate between a miss and its fill voids the fill (the read-write race)", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const before = miss(yield* cache.lookup(product(1)))
        yield* cache.invalidate([product(1).key], [product(1).guard])
        expect(yield* cache.fill(product(1), { ...before, value: "old", ttl })).toBe(false)
        const after = miss(yield* cache.lookup(product(1)))
        expect(after.stamp).not.toBe(before.stamp)
      })
    )

    it.scoped("a remembered absence answers Absent until invalidated, and is voided by a write like a value", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        expect(yield* put(cache, product(1), null)).toBe(true)
        expect(yield* cache.lookup(product(1))).toEqual({ _tag: "Absent" })
        yield* cache.invalidate([product(1).key, product(1).absent!], [product(1).guard])
        const next = miss(yield* cache.lookup(product(1)))
        yield* cache.invalidate([product(1).key, product(1).absent!], [product(1).guard])
        expect(yield* cache.fill(product(1), { ...next, value: null, ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidate deletes the keys and counts only those that existed", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* put(cache, product(1), "1")
        yield* put(cache, product(2), "2")
        const removed = yield* cache.invalidate([product(1).key, product(2).key, product(3).key], [product(1).guard])
        expect(removed).toBe(2)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
        expect((yield* cache.lookup(product(2)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidateIndexed removes every page the index names, leaves the rest, and moves the guard", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const long = Duration.seconds(30)
        for (let offset = 0; offset < 25 * 20; offset += 20) yield* put(cache, keys.page(offset, 20), "page", long)
        yield* put(cache, product(7), "seven", long)
        const other = CacheKeys.make("other:").page(0, 20)
        yield* put(cache, other, "other", long)
        const late = miss(yield* cache.lookup(keys.page(999, 20)))

        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(25)

        expect((yield* cache.lookup(keys.page(0, 20)))._tag).toBe("Miss")
        expect(yield* cache.lookup(product(7))).toMatchObject({ _tag: "Hit", value: "seven" })
        expect(yield* cache.lookup(other)).toMatchObject({ _tag: "Hit", value: "other" })
        expect(yield* cache.fill(keys.page(999, 20), { ...late, value: "old", ttl })).toBe(false)
        // The index went with its pages: a second invalidation finds nothing.
        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(0)
      })
    )

    it.scoped("a full index evicts the page that expires first; refilling a page it names evicts nothing", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const page = (offset: number) => bounded.page(offset, 10)
        const tags = Effect.forEach([0, 1, 2, 3, 4], (offset) => Effect.map(cache.lookup(page(offset)), (_) => _._tag))
        // Each page lives a second longer than the one before, so the first filled is the first to expire.
        for (let offset = 0; offset < 5; offset++) {
          expect(yield* put(cache, page(offset), `page ${offset}`, Duration.seconds(10 + offset))).toBe(true)
        }
        expect(yield* tags).toEqual(["Miss", "Miss", "Hit", "Hit", "Hit"])
        expect(yield* cache.lookup(page(3))).toMatchObject({ _tag: "Hit", value: "page 3" })

        const { stamp } = miss(yield* cache.lookup(page(0)))
        const again = { stamp, lease: null, value: "page 3 again", ttl: Duration.seconds(20) }
        expect(yield* cache.fill(page(3), again)).toBe(true)
        expect(yield* tags).toEqual(["Miss", "Miss", "Hit", "Hit", "Hit"])
        expect(yield* cache.lookup(page(3))).toMatchObject({ _tag: "Hit", value: "page 3 again" })
        expect(yield* cache.invalidateIndexed(bounded.listIndex, bounded.listGuard)).toBe(3)
      })
    )

    // Checked against the backend's clock, read before the fill and after each lookup, so a slow machine cannot fail
    // it: a miss that answered sooner than the ttl after the fill began is an early expiry, and a lookup that
    // answered within the ttl of that moment must have hit.
    it.scoped("an entry lives for its ttl, then expires", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const lifetime = 1_000
        const started = yield* backend.now
        yield* put(cache, product(1), "v1", Duration.millis(lifetime))
        const first = yield* cache.lookup(product(1))
        if ((yield* backend.now) - started < lifetime) expect(first._tag).toBe("Hit")
        let found = first
        for (let step = 0; step < 100 && found._tag === "Hit"; step++) {
          yield* backend.elapse(50)
          found = yield* cache.lookup(product(1))
        }
        expect(found._tag).toBe("Miss")
        expect((yield* backend.now) - started).toBeGreaterThanOrEqual(lifetime)
      })
    )

    it.scoped("a hit says how long the entry has left and how long its load took", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const { lease, stamp } = miss(yield* cache.lookup(product(1)))
        yield* cache.fill(product(1), { stamp, lease, value: "v", ttl: Duration.seconds(10), load: 1234 })
        const found = yield* cache.lookup(product(1))
        if (found._tag !== "Hit") throw new Error("expected a hit")
        expect(found.load).toBe(1234)
        expect(found.ttl).toBeGreaterThan(9_000)
        expect(found.ttl).toBeLessThanOrEqual(10_000)
      })
    )

    it.scoped("with a grace period the fallback copy outlives its entry, by that period and no longer", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const { lease, stamp } = miss(yield* cache.lookup(product(1)))
        const grace = Duration.millis(1_500)
        yield* cache.fill(product(1), { stamp, lease, value: "v1", ttl: Duration.millis(300), grace })
        // Only after the entry expired is the copy the only place the value lives.
        yield* backend.elapse(600)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
        const copy = yield* cache.stale(product(1))
        expect(copy?.value).toBe("v1")
        expect(copy!.age).toBeGreaterThanOrEqual(600)
        expect(copy!.age).toBeLessThan(1_800)
        yield* backend.elapse(1_500)
        expect(yield* cache.stale(product(1))).toBeNull()
        // Without a grace period there is no copy at all.
        yield* put(cache, product(2), "v2")
        expect(yield* cache.stale(product(2))).toBeNull()
      })
    )

    it.scoped("a write's invalidation removes the fallback copies too, by id and every page the index names", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const grace = Duration.seconds(60)
        const fillWithGrace = (slot: Slot, value: string) =>
          Effect.flatMap(cache.lookup(slot), (found) =>
            cache.fill(slot, { ...miss(found), value, ttl: Duration.seconds(10), grace })
          )
        yield* fillWithGrace(product(1), "one")
        yield* fillWithGrace(keys.page(0, 20), "page")
        yield* fillWithGrace(keys.page(20, 20), "page 2")
        expect((yield* cache.stale(product(1)))?.value).toBe("one")
        expect((yield* cache.stale(keys.page(0, 20)))?.value).toBe("page")
        // The product's shadow is bookkeeping: removing it is not counted as a delete.
        expect(yield* cache.invalidate([product(1).key], [product(1).guard], [product(1).shadow])).toBe(1)
        expect(yield* cache.stale(product(1))).toBeNull()
        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(2)
        expect(yield* cache.stale(keys.page(0, 20))).toBeNull()
        expect(yield* cache.stale(keys.page(20, 20))).toBeNull()
        // A page evicted from a full index takes its copy with it.
        const page = (offset: number) => bounded.page(offset, 10)
        for (let offset = 0; offset < 4; offset++) {
          const found = miss(yield* cache.lookup(page(offset)))
          yield* cache.fill(page(offset), { ...found, value: `p${offset}`, ttl: Duration.seconds(10 + offset), grace })
        }
        expect(yield* cache.stale(page(0))).toBeNull()
        expect((yield* cache.stale(page(1)))?.value).toBe("p1")
      })
    )

    it.scoped("a claim takes the lease as a miss would: one claimant at a time, and a write voids its fill", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* put(cache, product(1), "old")
        const first = yield* cache.claim(product(1))
        expect(first.lease).not.toBeNull()
        expect((yield* cache.claim(product(1))).lease).toBeNull()
        yield* cache.invalidate([product(1).key], [product(1).guard], [product(1).shadow])
        expect(yield* cache.fill(product(1), { ...first, value: "late", ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("ping succeeds while the cache answers", () => Effect.flatMap(backend.cache, (cache) => cache.ping))
  })
}

describe("Cache contract: redis specifics", () => {
  // The hits of one turn go out as one read; every lookup still gets its own answer, and one that is not a plain hit
  // still goes through the lookup script (stamp, lease). Counted by Redis itself.
  it.scoped("lookups made in one turn share one script, and each gets what it would get alone", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const ids = Array.from({ length: 30 }, (_, index) => index + 1)
      for (const id of ids) yield* put(cache, product(id), id === 7 ? null : `value ${id}`, Duration.seconds(60))
      for (const offset of [0, 1, 2]) yield* put(cache, keys.page(offset, 10), `page ${offset}`, Duration.seconds(60))
      const calls = (command: string) =>
        Effect.map(server.command("INFO", "commandstats"), (info) => {
          const found = new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))
          return found === null ? 0 : Number(found[1])
        })
      const before = { mget: yield* calls("mget"), scripts: yield* calls("evalsha") }
      const found = yield* Effect.all(
        [
          ...ids.map((id) => cache.lookup(product(id))),
          cache.lookup(product(3)),
          cache.lookup(product(31)),
          ...[0, 1, 2, 0].map((offset) => cache.lookup(keys.page(offset, 10)))
        ],
        { concurrency: "unbounded" }
      )
      const expected = [
        ...ids.map((id) => (id === 7 ? { _tag: "Absent" } : { _tag: "Hit", value: `value ${id}` })),
        { _tag: "Hit", value: "value 3" }
      ]
      expect(found.slice(0, 31)).toMatchObject(expected)
      expect(miss(found[31]!).lease).not.toBeNull()
      expect(found.slice(32)).toMatchObject(
        ["page 0", "page 1", "page 2", "page 0"].map((value) => ({ _tag: "Hit", value }))
      )
      // A hit still says how long its entry has left (for refresh ahead).
      const hit = found[0] as { ttl: number }
      expect(hit.ttl).toBeGreaterThan(50_000)
      expect(hit.ttl).toBeLessThanOrEqual(60_000)
      // One script for every lookup of the turn: products, pages and the miss of product 31 alike.
      expect((yield* calls("evalsha")) - before.scripts).toBe(1)
      expect((yield* calls("mget")) - before.mget).toBe(0)
    })
  )

  it.scoped("keys are plain Redis strings with a PX ttl no longer than asked; guards and leases expire too", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const slot = CacheKeys.make("product:").product(1 as ProductId)
      const found = miss(yield* cache.lookup(slot))
      expect(Number(yield* server.command("PTTL", slot.lease))).toBeGreaterThan(0)
      yield* cache.fill(slot, { ...found, value: '{"id":1}', ttl: Duration.seconds(60) })
      expect(yield* server.command("GET", "product:id:1")).toBe('{"id":1}')
      const pttl = Number(yield* server.command("PTTL", "product:id:1"))
      expect(pttl).toBeGreaterThan(55_000)
      expect(pttl).toBeLessThanOrEqual(60_000)
      expect(Number(yield* server.command("PTTL", slot.guard))).toBeGreaterThan(0)
      expect(yield* server.command("EXISTS", slot.lease)).toBe(0)
    })
  )

  it.scoped("the page index is a sorted set under <prefix>index:list that expires with its longest-lived page", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      for (const [offset, seconds] of [
        [0, 20],
        [1, 60],
        [2, 30]
      ] as const) {
        yield* put(cache, bounded.page(offset, 10), "page", Duration.seconds(seconds))
      }
      // Not a value key: a pattern on <prefix>list:* never matches it.
      expect(yield* server.command("TYPE", "p:index:list")).toBe("zset")
      expect(yield* server.command("ZRANGE", "p:index:list", "0", "-1")).toEqual([
        "p:list:0:10",
        "p:list:2:10",
        "p:list:1:10"
      ])
      const pttl = Number(yield* server.command("PTTL", "p:index:list"))
      expect(pttl).toBeGreaterThan(55_000)
      expect(pttl).toBeLessThanOrEqual(60_000)
      // Full (three pages): the next fill evicts p:list:0:10, which expires first, value and all.
      yield* put(cache, bounded.page(3, 10), "page", Duration.seconds(40))
      expect(yield* server.command("ZCARD", "p:index:list")).toBe(3)
      expect(yield* server.command("EXISTS", "p:list:0:10")).toBe(0)
    })
  )

  it.scoped("a page its index does not name (the index was evicted) is a miss, never served", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      yield* put(cache, keys.page(0, 20), "old page", Duration.seconds(30))
      yield* server.command("DEL", "p:index:list")
      expect(yield* server.command("GET", "p:list:0:20")).toBe("old page")
      expect(yield* put(cache, keys.page(0, 20), "new page", Duration.seconds(30))).toBe(true)
      expect(yield* cache.lookup(keys.page(0, 20))).toMatchObject({ _tag: "Hit", value: "new page" })
      expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(1)
    })
  )

  it.scoped(
    "a stopped Redis makes every operation fail fast with a CacheError, without waiting for CACHE_TIMEOUT",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.make()
        const cache = yield* build(redisLayer(server.url, { CACHE_TIMEOUT: "5s" }))
        yield* server.stop
        const timed = <A>(operation: Effect.Effect<A, CacheError>) =>
          Effect.map(Effect.timed(Effect.flip(operation)), ([elapsed, error]) => ({
            millis: Duration.toMillis(elapsed),
            error
          }))
        const results = yield* Effect.all(
          [
            timed(cache.lookup(product(1))),
            timed(cache.fill(product(1), { stamp: "s", lease: null, value: "v", ttl })),
            timed(cache.invalidate(["k"], ["g"])),
            timed(cache.invalidateIndexed(keys.listIndex, keys.listGuard)),
            timed(cache.ping)
          ],
          { concurrency: "unbounded" }
        ).pipe(Effect.withClock(liveClock))
        expect(results.map(({ error }) => error._tag)).toEqual(Array(5).fill("CacheError"))
        expect(results.map(({ error }) => error.op)).toEqual(["lookup", "fill", "invalidate", "invalidate", "ping"])
        // A fraction of the timeout: the bound tells failing at once from waiting for the timeout.
        for (const { error, millis } of results) expect(millis, error.op).toBeLessThan(1000)
      })
  )
})
