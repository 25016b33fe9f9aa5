import { Clock, Duration, Effect, Layer, Redacted, Runtime } from "effect"
import { Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { Lookup, Slot } from "../Cache.js"
import * as TurnBatch from "./TurnBatch.js"

// Each script runs atomically in Redis: that is what makes "check the guard, then write" a single step.

// KEYS: entry, guard, lease[, absent | index]. ARGV: token, guard ttl, lease ttl (ms), "index" when KEYS[4] is the
// index. The token becomes the guard's stamp if it has none. The lease is held as "<stamp>|<token>": a lease taken
// under an older stamp belongs to a reader whose fill a write has already voided, so it is taken over rather than
// waited for. An entry its index does not name is out of a write's reach (Redis evicted the index under memory
// pressure, or an older version filled it), so it is a miss, and the fill names it again.
// Replies {1, value} | {2} (absent) | {0, stamp, lease or false}.
const lookupScript = `
local indexed = ARGV[4] == "index"
local value = redis.call("GET", KEYS[1])
if value and (not indexed or redis.call("ZSCORE", KEYS[4], KEYS[1])) then return {1, value} end
if KEYS[4] and not indexed and redis.call("EXISTS", KEYS[4]) == 1 then return {2} end
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

// KEYS: the index, then entries it may name. Replies with each entry's value, or false where the entry is missing or
// the index does not name it (the lookup script then decides). The hits of many list reads in one step.
const peekIndexedScript = `
local values = {}
for i = 2, #KEYS do
  local value = redis.call("GET", KEYS[i])
  values[i - 1] = value and redis.call("ZSCORE", KEYS[1], KEYS[i]) and value or false
end
return values`

// KEYS: target (entry or absent), guard, lease[, index]. ARGV: value, ttl (ms), stamp, lease token ("" if none)[,
// index capacity]. The index is a sorted set scored by expiry time: a full index evicts the entry that expires first
// (names of expired entries, scored lowest, go before any live one), its value too, since an entry the index no
// longer names could not be invalidated; the index itself expires with its longest-lived entry.
const fillScript = `
if ARGV[4] ~= "" and redis.call("GET", KEYS[3]) == ARGV[4] then redis.call("DEL", KEYS[3]) end
if redis.call("GET", KEYS[2]) ~= ARGV[3] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
if KEYS[4] then
  local time = redis.call("TIME")
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local ttl = tonumber(ARGV[2])
  if not redis.call("ZSCORE", KEYS[4], KEYS[1]) then
    local over = redis.call("ZCARD", KEYS[4]) - tonumber(ARGV[5]) + 1
    if over > 0 then
      local evicted = redis.call("ZPOPMIN", KEYS[4], over)
      for i = 1, #evicted, 2 do redis.call("DEL", evicted[i]) end
    end
  end
  redis.call("ZADD", KEYS[4], now + ttl, KEYS[1])
  if redis.call("PTTL", KEYS[4]) < ttl then redis.call("PEXPIRE", KEYS[4], ttl) end
end
return 1`

// KEYS: the guards, then the entries. ARGV: number of guards, fresh stamp, guard ttl (ms).
const invalidateScript = `
local guards = tonumber(ARGV[1])
for i = 1, guards do redis.call("SET", KEYS[i], ARGV[2], "PX", ARGV[3]) end
local removed = 0
for i = guards + 1, #KEYS do removed = removed + redis.call("DEL", KEYS[i]) end
return removed`

// KEYS: guard, index. ARGV: fresh stamp, guard ttl (ms). One command whose work is the entries the index names, so
// neither the rest of the database nor its size can slow it. Those entries are not in KEYS: right on one Redis;
// a Redis Cluster would need the index and its entries in one hash slot.
const invalidateIndexedScript = `
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
local removed = 0
for _, key in ipairs(redis.call("ZRANGE", KEYS[2], 0, -1)) do removed = removed + redis.call("DEL", key) end
redis.call("DEL", KEYS[2])
return removed`

interface ScriptedRedis extends Redis {
  cacheLookup(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<[0 | 1 | 2, string?, string?]>
  cacheFill(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<0 | 1>
  cacheInvalidate(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number>
  cacheInvalidateIndexed(guard: string, index: string, stamp: string, guardTtl: number): Promise<number>
  cachePeekIndexed(keyCount: number, ...keys: Array<string>): Promise<Array<string | null>>
}

const absent: Lookup = { _tag: "Absent" }

const connect = Effect.gen(function* () {
  const url = yield* AppConfig.redisConnection
  const timeout = Duration.toMillis(yield* AppConfig.cacheTimeout)
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
    // of a cache hit, and under concurrency this shares it between requests (measured at 50 connections: +40% hits/s)
    enableAutoPipelining: true
  }) as ScriptedRedis
  redis.defineCommand("cacheLookup", { lua: lookupScript })
  redis.defineCommand("cacheFill", { lua: fillScript })
  redis.defineCommand("cacheInvalidate", { lua: invalidateScript })
  redis.defineCommand("cacheInvalidateIndexed", { numberOfKeys: 2, lua: invalidateIndexedScript })
  redis.defineCommand("cachePeekIndexed", { lua: peekIndexedScript })

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

export const make = Effect.gen(function* () {
  const redis = yield* Effect.acquireRelease(connect, release)
  const processStamp = `${process.pid.toString(36)}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`
  let stamps = 0
  const freshStamp = () => `${processStamp}.${(++stamps).toString(36)}`

  const attempt = <A>(op: string, run: () => Promise<A>) =>
    Effect.tryPromise({ try: run, catch: (cause) => new CacheError({ op, cause }) })

  const lookupScripted = (slot: Slot) => {
    const token = freshStamp()
    // A page names its index where a product names its remembered absence; none has both.
    const fourth = slot.index?.key ?? slot.absent
    const role = slot.index === undefined ? "absent" : "index"
    const run =
      fourth === undefined
        ? () => redis.cacheLookup(3, slot.key, slot.guard, slot.lease, token, guardTtlMillis, leaseTtlMillis)
        : () =>
            redis.cacheLookup(4, slot.key, slot.guard, slot.lease, fourth, token, guardTtlMillis, leaseTtlMillis, role)
    return Effect.map(attempt("lookup", run), ([found, payload, leased]): Lookup => {
      if (found === 1) return { _tag: "Hit", value: payload! }
      if (found === 2) return absent
      return { _tag: "Miss", stamp: payload!, lease: leased ?? null }
    })
  }

  const failedLookup = (cause: unknown) => new CacheError({ op: "lookup", cause })

  // Values of plain hits only: a page's value counts only while its index names it (see the lookup script).
  const pageValues = (index: string, keys: ReadonlyArray<string>) =>
    redis.cachePeekIndexed(1 + keys.length, index, ...keys)

  const peek = async (slots: ReadonlyArray<Slot>): Promise<Array<string | undefined>> => {
    const values = new Array<string | undefined>(slots.length)
    const byIndex = new Map<string, Array<number>>()
    const plain: Array<number> = []
    slots.forEach((slot, position) => {
      if (slot.index === undefined) return void plain.push(position)
      const positions = byIndex.get(slot.index.key)
      if (positions === undefined) byIndex.set(slot.index.key, [position])
      else positions.push(position)
    })
    const read = (positions: ReadonlyArray<number>, found: ReadonlyArray<string | null>) =>
      positions.forEach((position, at) => void (values[position] = found[at] ?? undefined))
    await Promise.all([
      plain.length === 0
        ? undefined
        : redis.mget(plain.map((at) => slots[at]!.key)).then((found) => read(plain, found)),
      ...Array.from(byIndex, ([index, positions]) =>
        pageValues(
          index,
          positions.map((at) => slots[at]!.key)
        ).then((found) => read(positions, found))
      )
    ])
    return values
  }

  // A hit needs none of the lookup script's bookkeeping, so the lookups of one turn first read together
  // (TurnBatch): products' values and remembered absences with one MGET, pages with one script per index. Whatever
  // is not found there (a miss) goes through the lookup script, which takes the guard's stamp and the lease.
  const peekProduct = TurnBatch.make({
    keyOf: (slot: Slot) => slot.key,
    fetch: async (slots) => {
      const values = await redis.mget(slots.flatMap((slot) => [slot.key, slot.absent!]))
      return slots.map((_, index): Lookup | undefined => {
        const value = values[2 * index]
        if (value != null) return { _tag: "Hit", value }
        return values[2 * index + 1] == null ? undefined : absent
      })
    },
    onError: failedLookup
  })
  const peekPages = new Map<string, (slot: Slot) => Effect.Effect<Lookup | undefined, CacheError>>()
  const peekPage = (slot: Slot) => {
    const index = slot.index!.key
    let peekOne = peekPages.get(index)
    if (peekOne === undefined) {
      peekOne = TurnBatch.make({
        keyOf: (slot: Slot) => slot.key,
        fetch: async (slots) => {
          const values = await pageValues(
            index,
            slots.map((slot) => slot.key)
          )
          return values.map((value): Lookup | undefined => (value === null ? undefined : { _tag: "Hit", value }))
        },
        onError: failedLookup
      })
      peekPages.set(index, peekOne)
    }
    return peekOne(slot)
  }

  return Cache.of({
    lookup: (slot) =>
      Effect.flatMap(
        slot.index !== undefined
          ? peekPage(slot)
          : slot.absent !== undefined
            ? peekProduct(slot)
            : Effect.succeed(undefined),
        (found) => (found !== undefined ? Effect.succeed(found) : lookupScripted(slot))
      ),
    peek: (slots) => (slots.length === 0 ? Effect.succeed([]) : attempt("lookup", () => peek(slots))),
    fill: (slot, { lease, stamp, ttl, value }) => {
      const target = value === null ? slot.absent : slot.key
      if (target === undefined) return Effect.succeed(false)
      const millis = Math.max(1, Math.round(Duration.toMillis(ttl)))
      const index = value === null ? undefined : slot.index
      const run =
        index === undefined
          ? () => redis.cacheFill(3, target, slot.guard, slot.lease, value ?? "", millis, stamp, lease ?? "")
          : () =>
              redis.cacheFill(
                4,
                target,
                slot.guard,
                slot.lease,
                index.key,
                value ?? "",
                millis,
                stamp,
                lease ?? "",
                index.capacity
              )
      return Effect.map(attempt("fill", run), (stored) => stored === 1)
    },
    invalidate: (keys, guards) =>
      attempt("invalidate", () =>
        redis.cacheInvalidate(
          guards.length + keys.length,
          ...guards,
          ...keys,
          guards.length,
          freshStamp(),
          guardTtlMillis
        )
      ),
    invalidateIndexed: (index, guard) =>
      attempt("invalidate", () => redis.cacheInvalidateIndexed(guard, index, freshStamp(), guardTtlMillis)),
    ping: Effect.asVoid(attempt("ping", () => redis.ping()))
  })
})

export const layer = Layer.scoped(Cache, make)
