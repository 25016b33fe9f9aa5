import { Clock, Duration, Effect, Layer, Redacted, Runtime } from "effect"
import { Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { CacheOperation, Fill, Lookup, Slot } from "../Cache.js"
import * as TurnBatch from "./TurnBatch.js"

// Each script runs atomically in Redis: that is what makes "check the guard, then write" a single step.

// Reads the guard's stamp (making it the token if it has none) and takes the lease unless another reader holds it
// under that stamp. The lease is held as "<stamp>|<token>": a lease taken under an older stamp belongs to a reader
// whose fill a write has already voided, so it is taken over rather than waited for. KEYS[2] guard, KEYS[3] lease;
// ARGV: token, guard ttl, lease ttl (ms). Replies {0, stamp, lease or false}.
const claimLua = `
local stamp = redis.call("GET", KEYS[2])
if not stamp then
  stamp = ARGV[1]
  redis.call("SET", KEYS[2], stamp, "PX", ARGV[2])
end
local held = redis.call("GET", KEYS[3])
if held and string.sub(held, 1, #stamp + 1) == stamp .. "|" then return {0, stamp, false} end
local lease = stamp .. "|" .. ARGV[1]
redis.call("SET", KEYS[3], lease, "PX", ARGV[3])
return {0, stamp, lease}`

// Looks up many slots in one step. KEYS: entry, guard, lease, shadow and absent-or-index key of each slot. ARGV: guard
// ttl, lease ttl (ms), a fresh token (a slot's own is the token, a dot and its position), then one letter per slot
// for its role: "a" (has an absent key), "i" (has an index), "n" (neither). Per slot: a hit also replies what refresh
// ahead needs, so that an ordinary hit costs no second round trip: the entry's remaining life (ms) and how long its
// load took (µs, from its shadow). On a miss, the guard's stamp and maybe the lease, as claimLua. An entry its index
// does not name is out of a write's reach (Redis evicted the index under memory pressure, or an older version filled
// it), so it is a miss, and the fill names it again.
// Replies, per slot, {1, value, pttl, load} | {2} (absent) | {0, stamp, lease or false}.
const lookupManyScript = `
local found = {}
for slot = 0, #KEYS / 5 - 1 do
  local k = slot * 5
  local role = string.sub(ARGV[4], slot + 1, slot + 1)
  local value = redis.call("GET", KEYS[k + 1])
  if value and (role ~= "i" or redis.call("ZSCORE", KEYS[k + 5], KEYS[k + 1])) then
    found[slot + 1] = {1, value, redis.call("PTTL", KEYS[k + 1]), tonumber(redis.call("HGET", KEYS[k + 4], "load")) or 0}
  elseif role == "a" and redis.call("EXISTS", KEYS[k + 5]) == 1 then
    found[slot + 1] = {2}
  else
    local stamp = redis.call("GET", KEYS[k + 2])
    if not stamp then
      stamp = ARGV[3] .. "." .. slot
      redis.call("SET", KEYS[k + 2], stamp, "PX", ARGV[1])
    end
    local held = redis.call("GET", KEYS[k + 3])
    if held and string.sub(held, 1, #stamp + 1) == stamp .. "|" then
      found[slot + 1] = {0, stamp, false}
    else
      local lease = stamp .. "|" .. ARGV[3] .. "." .. slot
      redis.call("SET", KEYS[k + 3], lease, "PX", ARGV[2])
      found[slot + 1] = {0, stamp, lease}
    end
  end
end
return found`

// Fills many slots in one step. KEYS, five per fill: target (entry or absent), guard, lease, shadow, index (or the
// target again when there is none). ARGV, nine per fill: value, ttl (ms), stamp, lease token ("" if none), load (µs),
// grace (ms; "" for a remembered absence, which has no shadow), then for an indexed entry its index's capacity,
// entries' prefix and shadows' prefix ("" otherwise). Each fill frees its lease and stores only if its guard still
// holds its stamp. The shadow is written with the entry: when, how long the load took, and with a grace period the
// value again, kept that much longer than the entry. The index is a sorted set scored by when an entry's shadow
// expires (its entry's expiry plus the grace period, the same order): a full index evicts the entry that expires
// first (names of expired entries, scored lowest, go before any live one), its value and shadow too, since what the
// index no longer names could not be invalidated; the index itself lives as long as its longest-lived shadow, so a
// write always reaches every fallback copy. Replies 1 (stored) or 0 (a write got there first) per fill.
const fillManyScript = `
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function fill(k, a)
  if ARGV[a + 4] ~= "" and redis.call("GET", KEYS[k + 3]) == ARGV[a + 4] then redis.call("DEL", KEYS[k + 3]) end
  if redis.call("GET", KEYS[k + 2]) ~= ARGV[a + 3] then return 0 end
  redis.call("SET", KEYS[k + 1], ARGV[a + 1], "PX", ARGV[a + 2])
  if ARGV[a + 6] == "" then return 1 end
  local kept = tonumber(ARGV[a + 2]) + tonumber(ARGV[a + 6])
  redis.call("DEL", KEYS[k + 4])
  if tonumber(ARGV[a + 6]) > 0 then
    redis.call("HSET", KEYS[k + 4], "at", now, "load", ARGV[a + 5], "value", ARGV[a + 1])
  else
    redis.call("HSET", KEYS[k + 4], "at", now, "load", ARGV[a + 5])
  end
  redis.call("PEXPIRE", KEYS[k + 4], kept)
  if ARGV[a + 7] ~= "" then
    local index = KEYS[k + 5]
    if not redis.call("ZSCORE", index, KEYS[k + 1]) then
      local over = redis.call("ZCARD", index) - tonumber(ARGV[a + 7]) + 1
      if over > 0 then
        local evicted = redis.call("ZPOPMIN", index, over)
        for i = 1, #evicted, 2 do
          redis.call("DEL", evicted[i], ARGV[a + 9] .. string.sub(evicted[i], #ARGV[a + 8] + 1))
        end
      end
    end
    redis.call("ZADD", index, now + kept, KEYS[k + 1])
    if redis.call("PTTL", index) < kept then redis.call("PEXPIRE", index, kept) end
  end
  return 1
end
local stored = {}
for slot = 0, #KEYS / 5 - 1 do stored[slot + 1] = fill(slot * 5, slot * 9) end
return stored`

// KEYS: the guards, the entries, then their shadows. ARGV: number of guards, number of entries, fresh stamp, guard
// ttl (ms). Only entries are counted: shadows are bookkeeping.
const invalidateScript = `
local guards = tonumber(ARGV[1])
local counted = guards + tonumber(ARGV[2])
for i = 1, guards do redis.call("SET", KEYS[i], ARGV[3], "PX", ARGV[4]) end
local removed = 0
for i = guards + 1, counted do removed = removed + redis.call("DEL", KEYS[i]) end
for i = counted + 1, #KEYS do redis.call("DEL", KEYS[i]) end
return removed`

// KEYS: guard, index. ARGV: fresh stamp, guard ttl (ms), entries' prefix, shadows' prefix. One command whose work is
// the entries the index names (and their shadows), so neither the rest of the database nor its size can slow it.
// Those keys are not in KEYS: right on one Redis; a Redis Cluster would need the index and its entries in one slot.
const invalidateIndexedScript = `
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
local removed = 0
for _, key in ipairs(redis.call("ZRANGE", KEYS[2], 0, -1)) do
  removed = removed + redis.call("DEL", key)
  redis.call("DEL", ARGV[4] .. string.sub(key, #ARGV[3] + 1))
end
redis.call("DEL", KEYS[2])
return removed`

// KEYS: shadow[, index, entry]. The fallback copy and its age (ms), unless the index no longer names the entry.
const staleScript = `
if KEYS[2] and not redis.call("ZSCORE", KEYS[2], KEYS[3]) then return false end
local copy = redis.call("HMGET", KEYS[1], "value", "at")
if not copy[1] then return false end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return {copy[1], now - tonumber(copy[2])}`

interface ScriptedRedis extends Redis {
  cacheLookupMany(
    keyCount: number,
    ...keysThenArgs: Array<string | number>
  ): Promise<Array<[0 | 1 | 2, string?, (string | number)?, number?]>>
  cacheFillMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<0 | 1>>
  cacheInvalidate(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number>
  cacheInvalidateIndexed(guard: string, index: string, ...args: Array<string | number>): Promise<number>
  cacheStale(keyCount: number, ...keysThenArgs: Array<string>): Promise<[string, number] | null>
  cacheClaim(
    entry: string,
    guard: string,
    lease: string,
    ...args: Array<string | number>
  ): Promise<[0, string, string?]>
}

const absent: Lookup = { _tag: "Absent" }

export interface RedisCacheOptions {
  /** `redis://` or `rediss://`; redacted, as it may carry a password. */
  readonly url: Redacted.Redacted
  /** The longest one command may take (then a CacheError); also bounds connecting. */
  readonly timeout: Duration.DurationInput
}

const connect = (options: RedisCacheOptions) =>
  Effect.gen(function* () {
    const url = options.url
    const timeout = Duration.toMillis(options.timeout)
    const runtime = yield* Effect.runtime()
    const log = Runtime.runSync(runtime)

    const redis = new Redis(Redacted.value(url), {
      // Fail fast: with the offline queue off and one retry, a dead Redis costs a request microseconds, not seconds;
      // the command timeout is what catches a Redis that accepts connections but does not answer.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: timeout,
      connectTimeout: Math.max(timeout, 1000),
      retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
      lazyConnect: true,
      // Commands issued in one turn of the event loop go out in one write: a socket write was the largest single cost
      // of a cache hit, and under concurrency this shares it between requests (figures in the README's benchmarks)
      enableAutoPipelining: true
    }) as ScriptedRedis
    redis.defineCommand("cacheLookupMany", { lua: lookupManyScript })
    redis.defineCommand("cacheFillMany", { lua: fillManyScript })
    redis.defineCommand("cacheInvalidate", { lua: invalidateScript })
    redis.defineCommand("cacheInvalidateIndexed", { numberOfKeys: 2, lua: invalidateIndexedScript })
    redis.defineCommand("cacheStale", { lua: staleScript })
    redis.defineCommand("cacheClaim", { numberOfKeys: 3, lua: claimLua })

    // One log line per transition, not one per failed request.
    let up = false
    redis.on("ready", () => {
      up = true
      log(Effect.logInfo("cache connected"))
    })
    redis.on("error", (error) => {
      if (!up) return
      up = false
      log(Effect.logWarning("cache unreachable; serving from the database until it returns", error.message))
    })
    redis.on("end", () => {
      up = false
    })

    // Waiting briefly lets a healthy Redis be ready for the first request; an absent one only makes us start degraded.
    yield* Effect.tryPromise(() => redis.connect()).pipe(
      Effect.timeout(Duration.millis(Math.max(timeout, 1000))),
      Effect.catchAll(() => Effect.logWarning("cache unreachable at start; starting degraded, will keep trying")),
      // Wall-clock time even under a TestClock: this waits on a real socket.
      Effect.withClock(Clock.make())
    )
    return redis
  })

// quit() waits for Redis to answer, which after a long outage may be never: bound it with a plain timer (a
// finalizer is uninterruptible, and tests may run it under the TestClock), then drop the socket.
const release = (redis: Redis) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        const bound = setTimeout(resolve, 1000)
        redis
          .quit()
          .catch(() => undefined)
          .finally(() => {
            clearTimeout(bound)
            resolve()
          })
      })
  ).pipe(Effect.ensuring(Effect.sync(() => redis.disconnect())))

export const make = (options: RedisCacheOptions) =>
  Effect.gen(function* () {
    const redis = yield* Effect.acquireRelease(connect(options), release)
    const processStamp = `${process.pid.toString(36)}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`
    let stamps = 0
    const freshStamp = () => `${processStamp}.${(++stamps).toString(36)}`

    const runFork = Runtime.runFork(yield* Effect.runtime<never>())

    const attempt = <A>(op: CacheOperation, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new CacheError({ op, reason: "failed", cause }) })

    const lookupOf = ([found, payload, third, load]: [0 | 1 | 2, string?, (string | number)?, number?]): Lookup => {
      if (found === 1) return { _tag: "Hit", value: payload!, ttl: third as number, load: load! }
      if (found === 2) return absent
      return { _tag: "Miss", stamp: payload!, lease: (third as string | undefined) ?? null }
    }

    const lookupMany = (slots: ReadonlyArray<Slot>) =>
      slots.length === 0
        ? Effect.succeed([])
        : Effect.map(
            attempt("lookup", () => {
              const keys: Array<string> = []
              let roles = ""
              for (const slot of slots) {
                // A page names its index where a product names its remembered absence; none has both.
                keys.push(slot.key, slot.guard, slot.lease, slot.shadow, slot.index?.key ?? slot.absent ?? slot.key)
                roles += slot.index !== undefined ? "i" : slot.absent !== undefined ? "a" : "n"
              }
              return redis.cacheLookupMany(keys.length, ...keys, guardTtlMillis, leaseTtlMillis, freshStamp(), roles)
            }),
            (replies) => replies.map(lookupOf)
          )

    const fillMany = (fills: ReadonlyArray<readonly [Slot, Fill]>) => {
      if (fills.length === 0) return Effect.succeed([])
      const keys: Array<string> = []
      const args: Array<string | number> = []
      for (const [slot, { grace, lease, load, stamp, ttl, value }] of fills) {
        // A remembered absence has no shadow ("" below) and is named by no index; a slot without one stores nothing.
        const target = value === null ? slot.absent : slot.key
        const index = value === null ? undefined : slot.index
        keys.push(target ?? "", slot.guard, slot.lease, slot.shadow, index?.key ?? target ?? "")
        args.push(
          value ?? "",
          Math.max(1, Math.round(Duration.toMillis(ttl))),
          // No stamp matches "": a fill without a target is refused.
          target === undefined ? "" : stamp,
          lease ?? "",
          Math.round(load ?? 0),
          value === null ? "" : grace === undefined ? 0 : Math.round(Duration.toMillis(grace)),
          index?.capacity ?? "",
          index?.entries ?? "",
          index?.shadows ?? ""
        )
      }
      return Effect.map(
        attempt("fill", () => redis.cacheFillMany(keys.length, ...keys, ...args)),
        (stored) => stored.map((one) => one === 1)
      )
    }

    return Cache.of({
      // Every lookup made in one turn of the event loop goes to Redis in one script (TurnBatch): under load one
      // command answers many requests, each slot looked up exactly as it would be alone.
      lookup: TurnBatch.make({ keyOf: (slot: Slot) => slot.key, fetch: lookupMany, runFork }),
      lookupMany,
      fill: (slot, fill) => Effect.map(fillMany([[slot, fill]]), (stored) => stored[0]!),
      fillMany,
      invalidate: (keys, guards, also = []) =>
        attempt("invalidate", () =>
          redis.cacheInvalidate(
            guards.length + keys.length + also.length,
            ...guards,
            ...keys,
            ...also,
            guards.length,
            keys.length,
            freshStamp(),
            guardTtlMillis
          )
        ),
      invalidateIndexed: (index, guard) =>
        attempt("invalidate", () =>
          redis.cacheInvalidateIndexed(guard, index.key, freshStamp(), guardTtlMillis, index.entries, index.shadows)
        ),
      stale: (slot) =>
        Effect.map(
          attempt("stale", () =>
            slot.index === undefined
              ? redis.cacheStale(1, slot.shadow)
              : redis.cacheStale(3, slot.shadow, slot.index.key, slot.key)
          ),
          (found) => (found === null ? null : { value: found[0], age: Number(found[1]) })
        ),
      claim: (slot) =>
        Effect.map(
          attempt("claim", () =>
            redis.cacheClaim(slot.key, slot.guard, slot.lease, freshStamp(), guardTtlMillis, leaseTtlMillis)
          ),
          ([, stamp, lease]) => ({ stamp, lease: lease ?? null })
        ),
      ping: Effect.asVoid(attempt("ping", () => redis.ping()))
    })
  })

/** The cache in Redis at `options.url`, connected for the life of the layer. */
export const layer = (options: RedisCacheOptions) => Layer.scoped(Cache, make(options))

/** The same, at `REDIS_URL` (or `REDIS_ADDR`) with `CACHE_TIMEOUT`. */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(Effect.all({ url: AppConfig.redisConnection, timeout: AppConfig.cacheTimeout }), layer)
)
