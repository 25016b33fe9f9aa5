import { Clock, Duration, Effect, Layer, Redacted, Runtime } from "effect"
import { Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { CacheOperation, Lookup, Peeked, Slot } from "../Cache.js"
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

// What lookups find without bookkeeping, for many slots in one step. ARGV[1] "index": KEYS are the index, then entry
// and shadow of each slot; "absent": entry, shadow and absent key of each slot. Replies, per slot, {1, value, pttl,
// load} as a lookup's hit, {2} for a remembered absence, or false for a miss (left to a lookup).
const peekScript = `
local indexed = ARGV[1] == "index"
local width = indexed and 2 or 3
local found = {}
for i = indexed and 2 or 1, #KEYS, width do
  local value = redis.call("GET", KEYS[i])
  if value and (not indexed or redis.call("ZSCORE", KEYS[1], KEYS[i])) then
    found[#found + 1] = {1, value, redis.call("PTTL", KEYS[i]), tonumber(redis.call("HGET", KEYS[i + 1], "load")) or 0}
  elseif not indexed and redis.call("EXISTS", KEYS[i + 2]) == 1 then
    found[#found + 1] = {2}
  else
    found[#found + 1] = false
  end
end
return found`

// Looks up many slots in one step. KEYS: entry, guard, lease, shadow and absent-or-index key of each slot. ARGV: guard
// ttl, lease ttl (ms), then each slot's token and role ("absent", "index" or "none"). Per slot: a hit also replies
// what refresh ahead needs, so that an ordinary hit costs no second round trip: the entry's remaining life (ms) and
// how long its load took (µs, from its shadow). On a miss, the guard's stamp and maybe the lease, as claimLua. An
// entry its index does not name is out of a write's reach (Redis evicted the index under memory pressure, or an older
// version filled it), so it is a miss, and the fill names it again.
// Replies, per slot, {1, value, pttl, load} | {2} (absent) | {0, stamp, lease or false}.
const lookupManyScript = `
local found = {}
for slot = 0, #KEYS / 5 - 1 do
  local k = slot * 5
  local token, role = ARGV[3 + slot * 2], ARGV[4 + slot * 2]
  local value = redis.call("GET", KEYS[k + 1])
  if value and (role ~= "index" or redis.call("ZSCORE", KEYS[k + 5], KEYS[k + 1])) then
    found[slot + 1] = {1, value, redis.call("PTTL", KEYS[k + 1]), tonumber(redis.call("HGET", KEYS[k + 4], "load")) or 0}
  elseif role == "absent" and redis.call("EXISTS", KEYS[k + 5]) == 1 then
    found[slot + 1] = {2}
  else
    local stamp = redis.call("GET", KEYS[k + 2])
    if not stamp then
      stamp = token
      redis.call("SET", KEYS[k + 2], stamp, "PX", ARGV[1])
    end
    local held = redis.call("GET", KEYS[k + 3])
    if held and string.sub(held, 1, #stamp + 1) == stamp .. "|" then
      found[slot + 1] = {0, stamp, false}
    else
      local lease = stamp .. "|" .. token
      redis.call("SET", KEYS[k + 3], lease, "PX", ARGV[2])
      found[slot + 1] = {0, stamp, lease}
    end
  end
end
return found`

// KEYS: target (entry or absent), guard, lease, shadow[, index]. ARGV: value, ttl (ms), stamp, lease token ("" if
// none), load (µs), grace (ms; "" for a remembered absence, which has no shadow)[, index capacity, entries' prefix,
// shadows' prefix]. The shadow is written with the entry: when, how long the load took, and with a grace period the
// value again, kept that much longer than the entry. The index is a sorted set scored by when an entry's shadow
// expires (its entry's expiry plus the grace period, the same order): a full index evicts the entry that expires
// first (names of expired entries, scored lowest, go before any live one), its value and shadow too, since what the
// index no longer names could not be invalidated; the index itself lives as long as its longest-lived shadow, so a
// write always reaches every fallback copy.
const fillScript = `
if ARGV[4] ~= "" and redis.call("GET", KEYS[3]) == ARGV[4] then redis.call("DEL", KEYS[3]) end
if redis.call("GET", KEYS[2]) ~= ARGV[3] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if ARGV[6] == "" then return 1 end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local kept = tonumber(ARGV[2]) + tonumber(ARGV[6])
redis.call("DEL", KEYS[4])
if tonumber(ARGV[6]) > 0 then
  redis.call("HSET", KEYS[4], "at", now, "load", ARGV[5], "value", ARGV[1])
else
  redis.call("HSET", KEYS[4], "at", now, "load", ARGV[5])
end
redis.call("PEXPIRE", KEYS[4], kept)
if KEYS[5] then
  if not redis.call("ZSCORE", KEYS[5], KEYS[1]) then
    local over = redis.call("ZCARD", KEYS[5]) - tonumber(ARGV[7]) + 1
    if over > 0 then
      local evicted = redis.call("ZPOPMIN", KEYS[5], over)
      for i = 1, #evicted, 2 do
        redis.call("DEL", evicted[i], ARGV[9] .. string.sub(evicted[i], #ARGV[8] + 1))
      end
    end
  end
  redis.call("ZADD", KEYS[5], now + kept, KEYS[1])
  if redis.call("PTTL", KEYS[5]) < kept then redis.call("PEXPIRE", KEYS[5], kept) end
end
return 1`

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
  cachePeek(keyCount: number, ...keysThenArgs: Array<string>): Promise<Array<[1, string, number, number] | [2] | null>>
  cacheFill(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<0 | 1>
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

const absent: Peeked = { _tag: "Absent" }

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
    redis.defineCommand("cachePeek", { lua: peekScript })
    redis.defineCommand("cacheLookupMany", { lua: lookupManyScript })
    redis.defineCommand("cacheFill", { lua: fillScript })
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

    // Every lookup made in one turn of the event loop goes to Redis in one script (TurnBatch): under load one command
    // answers many requests, hits and misses alike, each slot looked up exactly as the lookup script would alone.
    const lookupInTurn = TurnBatch.make({
      keyOf: (slot: Slot) => slot.key,
      fetch: (slots) =>
        Effect.map(
          attempt("lookup", () => {
            const keys: Array<string> = []
            const args: Array<string | number> = [guardTtlMillis, leaseTtlMillis]
            for (const slot of slots) {
              // A page names its index where a product names its remembered absence; none has both.
              keys.push(slot.key, slot.guard, slot.lease, slot.shadow, slot.index?.key ?? slot.absent ?? slot.key)
              args.push(
                freshStamp(),
                slot.index !== undefined ? "index" : slot.absent !== undefined ? "absent" : "none"
              )
            }
            return redis.cacheLookupMany(keys.length, ...keys, ...args)
          }),
          (replies) => replies.map(lookupOf)
        ),
      runFork
    })

    // Slots of one kind in one script: pages of one index, or products (with their remembered absences).
    const peekKind = async (slots: ReadonlyArray<Slot>): Promise<Array<Peeked | undefined>> => {
      const index = slots[0]!.index?.key
      const keys =
        index === undefined
          ? slots.flatMap((slot) => [slot.key, slot.shadow, slot.absent ?? slot.key])
          : [index, ...slots.flatMap((slot) => [slot.key, slot.shadow])]
      const replies = await redis.cachePeek(keys.length, ...keys, index === undefined ? "absent" : "index")
      return replies.map((reply): Peeked | undefined =>
        reply === null
          ? undefined
          : reply[0] === 2
            ? absent
            : { _tag: "Hit", value: reply[1], ttl: reply[2], load: reply[3] }
      )
    }

    const peek = async (slots: ReadonlyArray<Slot>): Promise<Array<Peeked | undefined>> => {
      const kinds = new Map<string, Array<number>>()
      slots.forEach((slot, position) => {
        const kind = slot.index?.key ?? ""
        const positions = kinds.get(kind)
        if (positions === undefined) kinds.set(kind, [position])
        else positions.push(position)
      })
      const found = new Array<Peeked | undefined>(slots.length)
      await Promise.all(
        Array.from(kinds.values(), (positions) =>
          peekKind(positions.map((position) => slots[position]!)).then((replies) =>
            replies.forEach((reply, at) => void (found[positions[at]!] = reply))
          )
        )
      )
      return found
    }

    return Cache.of({
      lookup: lookupInTurn,
      peek: (slots) => (slots.length === 0 ? Effect.succeed([]) : attempt("lookup", () => peek(slots))),
      fill: (slot, { grace, lease, load, stamp, ttl, value }) => {
        const target = value === null ? slot.absent : slot.key
        if (target === undefined) return Effect.succeed(false)
        const millis = Math.max(1, Math.round(Duration.toMillis(ttl)))
        // A remembered absence has no shadow ("" below) and is named by no index.
        const graceMillis = value === null ? "" : grace === undefined ? 0 : Math.round(Duration.toMillis(grace))
        const loadMicros = Math.round(load ?? 0)
        const index = value === null ? undefined : slot.index
        const run =
          index === undefined
            ? () =>
                redis.cacheFill(
                  4,
                  target,
                  slot.guard,
                  slot.lease,
                  slot.shadow,
                  value ?? "",
                  millis,
                  stamp,
                  lease ?? "",
                  loadMicros,
                  graceMillis
                )
            : () =>
                redis.cacheFill(
                  5,
                  target,
                  slot.guard,
                  slot.lease,
                  slot.shadow,
                  index.key,
                  value ?? "",
                  millis,
                  stamp,
                  lease ?? "",
                  loadMicros,
                  graceMillis,
                  index.capacity,
                  index.entries,
                  index.shadows
                )
        return Effect.map(attempt("fill", run), (stored) => stored === 1)
      },
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
