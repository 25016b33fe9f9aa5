import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import type { CacheError } from "../src/Cache.js"
import * as CacheKeys from "../src/Cache/Keys.js"
import type { ProductId } from "../src/Domain/Product.js"
import { build, redisLayer, liveClock, keys, bounded, product, ttl, miss, put } from "./support/CacheBackends.js"
import * as RedisServer from "./support/RedisServer.js"

// What only the Redis backend has to show: one round trip for the lookups of a turn, bounded waits on a Redis
// that does not answer.

describe("Cache contract: redis specifics", () => {
  // The hits of one turn go out as one read; every lookup still gets its own answer, and one that is not a plain hit
  // still goes through the lookup script (stamp, lease). Counted by Redis itself.
  it.scoped("lookups made in one turn share one MGET and one script, and each gets what it would get alone", () =>
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
      // The lookups above all missed, which sends the next lookup straight to the script; one that hits restores the
      // MGET (the next test shows the switch).
      expect(yield* cache.lookup(product(1))).toMatchObject({ _tag: "Hit" })
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
      // One MGET reads the products' hits and remembered absences; one script takes what it leaves: the pages (their
      // index must name them) and the miss of product 31 (which claims a lease).
      expect((yield* calls("mget")) - before.mget).toBe(1)
      expect((yield* calls("evalsha")) - before.scripts).toBe(1)
    })
  )

  // The MGET is a round trip more for what it does not settle: under misses it is left out, and hits bring it back.
  it.scoped(
    "after a lookup that mostly missed the next goes straight to the script, and one that hits restores the MGET",
    () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.make()
        const cache = yield* build(redisLayer(server.url))
        const calls = (command: string) =>
          Effect.map(server.command("INFO", "commandstats"), (info) =>
            Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))?.[1] ?? 0)
          )
        const sent = <A, E, R>(lookups: Effect.Effect<A, E, R>) =>
          Effect.gen(function* () {
            const before = { mget: yield* calls("mget"), scripts: yield* calls("evalsha") }
            const found = yield* lookups
            return {
              found,
              mget: (yield* calls("mget")) - before.mget,
              scripts: (yield* calls("evalsha")) - before.scripts
            }
          })
        const lookupAll = (ids: ReadonlyArray<number>) =>
          Effect.all(
            ids.map((id) => cache.lookup(product(id))),
            { concurrency: "unbounded" }
          )
        // The put's lookup missed: the next lookup goes to the script alone, and settles one slot of four.
        yield* put(cache, product(1), "value 1", Duration.seconds(60))
        expect(yield* sent(lookupAll([1, 2, 3, 4]))).toMatchObject({ mget: 0, scripts: 1 })
        // So does the next, a hit; the one after it is read with the MGET alone.
        const hit = { _tag: "Hit", value: "value 1" }
        expect(yield* sent(lookupAll([1]))).toMatchObject({ found: [hit], mget: 0, scripts: 1 })
        expect(yield* sent(lookupAll([1]))).toMatchObject({ found: [hit], mget: 1, scripts: 0 })
        // The MGET settles one of four again and the script takes the other three; so the next skips the MGET.
        const missed = { _tag: "Miss" }
        expect(yield* sent(lookupAll([1, 2, 3, 4]))).toMatchObject({
          found: [hit, missed, missed, missed],
          mget: 1,
          scripts: 1
        })
        expect(yield* sent(lookupAll([1]))).toMatchObject({ found: [hit], mget: 0, scripts: 1 })
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

  it.scoped("a guard lives no longer than what it filled: a remembered absence's guard goes with it", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const slot = CacheKeys.make("product:").product(404 as ProductId)
      const found = miss(yield* cache.lookup(slot))
      expect(Number(yield* server.command("PTTL", slot.guard)), "a miss's guard outlives the load").toBeGreaterThan(
        20_000
      )
      yield* cache.fill(slot, { ...found, value: null, ttl: Duration.seconds(2) })
      expect(Number(yield* server.command("PTTL", slot.absent!))).toBeLessThanOrEqual(2_000)
      const guard = Number(yield* server.command("PTTL", slot.guard))
      expect(guard).toBeGreaterThan(0)
      expect(guard).toBeLessThanOrEqual(2_000)
    })
  )

  // Under entries shorter-lived than a lease, the next miss of a key read again soon finds the guard the fill left:
  // it takes the lease under the same stamp instead of Redis making a guard anew for every fill.
  it.scoped("a fill leaves its guard a lease's life at least, so a short-lived entry's next miss keeps its stamp", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const slot = CacheKeys.make("product:").product(5 as ProductId)
      const found = miss(yield* cache.lookup(slot))
      yield* cache.fill(slot, { ...found, value: '{"id":5}', ttl: Duration.millis(50) })
      const guard = Number(yield* server.command("PTTL", slot.guard))
      expect(guard).toBeGreaterThan(500)
      expect(guard).toBeLessThanOrEqual(1_000)
      // The entry goes (as it would expire); the guard stays, and the next miss shares the first one's stamp.
      yield* server.command("DEL", "product:id:5")
      const next = miss(yield* cache.lookup(slot))
      expect(next.stamp).toBe(found.stamp)
      expect(next.lease).not.toBeNull()
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

  // The shadow is a string so that an MGET reads it; an older version wrote a hash, and a Redis may still hold one.
  it.scoped("a shadow of another type (an older version's hash) reads as none: a miss, which the fill replaces", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const cache = yield* build(redisLayer(server.url))
      const slot = product(1)
      yield* put(cache, slot, "v1", Duration.seconds(60))
      const text = String(yield* server.command("GET", slot.shadow))
      // "<epoch>|<loaded at>|<load µs>|<expires at>", with no fallback copy when there is no grace period.
      const [epoch, at, , expires] = text.split("|")
      expect(text).toMatch(/^[^|]+\|\d+\|\d+\|\d+$/)
      expect(Number(expires) - Number(at)).toBe(60_000)
      yield* server.command("DEL", slot.shadow)
      yield* server.command("HSET", slot.shadow, "epoch", epoch!, "at", at!, "load", "1", "value", "v1")
      expect(yield* cache.stale(slot)).toBeNull()
      const found = miss(yield* cache.lookup(slot))
      expect(yield* cache.fill(slot, { ...found, value: "v2", ttl: Duration.seconds(60) })).toBe(true)
      expect(String(yield* server.command("GET", slot.shadow))).toMatch(new RegExp(`^${epoch}\\|`))
      expect(yield* cache.lookup(slot)).toMatchObject({ _tag: "Hit", value: "v2" })
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
