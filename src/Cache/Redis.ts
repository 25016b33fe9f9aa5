import { Clock, Duration, Effect, Layer, Redacted, Runtime } from "effect"
import { Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis } from "../Cache.js"

// Each script runs atomically in Redis: that is what makes "check the guard, then write" a single step.

// KEYS: entry, guard. ARGV: candidate stamp, guard ttl (ms). A hit returns the value; a miss, the guard's stamp.
const lookupScript = `
local value = redis.call("GET", KEYS[1])
if value then return {1, value} end
local stamp = redis.call("GET", KEYS[2])
if not stamp then
  stamp = ARGV[1]
  redis.call("SET", KEYS[2], stamp, "PX", ARGV[2])
end
return {0, stamp}`

// KEYS: entry, guard. ARGV: value, ttl (ms), stamp.
const fillScript = `
if redis.call("GET", KEYS[2]) ~= ARGV[3] then return 0 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1`

// KEYS: the guards, then the entries. ARGV: number of guards, fresh stamp, guard ttl (ms).
const invalidateScript = `
local guards = tonumber(ARGV[1])
for i = 1, guards do redis.call("SET", KEYS[i], ARGV[2], "PX", ARGV[3]) end
local removed = 0
for i = guards + 1, #KEYS do removed = removed + redis.call("DEL", KEYS[i]) end
return removed`

interface ScriptedRedis extends Redis {
  cacheLookup(entry: string, guard: string, stamp: string, guardTtl: number): Promise<[0 | 1, string]>
  cacheFill(entry: string, guard: string, value: string, ttl: number, stamp: string): Promise<0 | 1>
  cacheInvalidate(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<number>
}

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
    lazyConnect: true
  }) as ScriptedRedis
  redis.defineCommand("cacheLookup", { numberOfKeys: 2, lua: lookupScript })
  redis.defineCommand("cacheFill", { numberOfKeys: 2, lua: fillScript })
  redis.defineCommand("cacheInvalidate", { lua: invalidateScript })

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

  const unlinkMatching = (pattern: string) =>
    Effect.iterate(
      { cursor: "0", removed: 0, first: true },
      {
        while: (state) => state.first || state.cursor !== "0",
        body: (state) =>
          attempt("scan", () => redis.scan(state.cursor, "MATCH", pattern, "COUNT", 1000)).pipe(
            Effect.flatMap(([cursor, keys]) =>
              keys.length === 0
                ? Effect.succeed({ cursor, removed: state.removed, first: false })
                : Effect.map(
                    attempt("unlink", () => redis.unlink(...keys)),
                    (n) => ({
                      cursor,
                      removed: state.removed + n,
                      first: false
                    })
                  )
            )
          )
      }
    )

  return Cache.of({
    lookup: (key, guard) =>
      Effect.map(
        attempt("lookup", () => redis.cacheLookup(key, guard, freshStamp(), guardTtlMillis)),
        ([hit, payload]) => (hit === 1 ? { _tag: "Hit", value: payload } : { _tag: "Miss", stamp: payload })
      ),
    fill: ({ guard, key, stamp, ttl, value }) =>
      Effect.map(
        attempt("fill", () =>
          redis.cacheFill(key, guard, value, Math.max(1, Math.round(Duration.toMillis(ttl))), stamp)
        ),
        (stored) => stored === 1
      ),
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
    invalidateMatching: (pattern, guard) =>
      attempt("invalidate", () => redis.set(guard, freshStamp(), "PX", guardTtlMillis)).pipe(
        Effect.zipRight(unlinkMatching(pattern)),
        Effect.map((state) => state.removed)
      ),
    ping: Effect.asVoid(attempt("ping", () => redis.ping()))
  })
})

export const layer = Layer.scoped(Cache, make)
