import { Clock, Duration, Effect, Layer, Redacted, Runtime } from "effect"
import calculateSlot from "cluster-key-slot"
import { Cluster, Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { CacheOperation, CacheTopology, Fill, Lookup, Removal, Slot } from "../Cache.js"
import { cacheMasters, cacheTopology, labels } from "../Metrics.js"
import { CacheEpoch } from "./Epoch.js"
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
// ttl, lease ttl (ms), a fresh token (a slot's own is the token, a dot and its position), one letter per slot for its
// role: "a" (has an absent key), "i" (has an index), "n" (neither), then the epoch (Cache/Epoch.ts). Per slot: a hit
// also replies what refresh ahead needs, so that an ordinary hit costs no second round trip: the entry's remaining
// life (ms) and how long its load took (µs, from its shadow). On a miss, the guard's stamp and maybe the lease, as
// claimLua. An entry whose shadow names another epoch (or none) was filled in a Redis history that may have lost
// invalidations since, and an entry its index does not name is out of a write's reach (Redis evicted the index under
// memory pressure, or an older version filled it): both are misses, and the fill replaces them.
// Replies, per slot, {1, value, pttl, load} | {2} (absent) | {0, stamp, lease or false}.
const lookupManyScript = `
local found = {}
for slot = 0, #KEYS / 5 - 1 do
  local k = slot * 5
  local role = string.sub(ARGV[4], slot + 1, slot + 1)
  local value = redis.call("GET", KEYS[k + 1])
  local shadow = value and redis.call("HMGET", KEYS[k + 4], "epoch", "load")
  if value and shadow[1] == ARGV[5] and (role ~= "i" or redis.call("ZSCORE", KEYS[k + 5], KEYS[k + 1])) then
    found[slot + 1] = {1, value, redis.call("PTTL", KEYS[k + 1]), tonumber(shadow[2]) or 0}
  elseif role == "a" and redis.call("GET", KEYS[k + 5]) == ARGV[5] then
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
// target again when there is none). ARGV, nine per fill: value (the epoch, for a remembered absence), ttl (ms), stamp,
// lease token ("" if none), load (µs), grace (ms; "" for a remembered absence, which has no shadow), then for an
// indexed entry its index's capacity, entries' prefix and shadows' prefix ("" otherwise); last, once, the epoch. Each
// fill frees its lease and stores only if its guard still holds its stamp; the guard then lives no longer than what
// it filled (a remembered "not found" lives seconds, and a client asking for ever new ids must not size Redis by
// guards; a fill that a shorter guard voids is safe). The shadow is written with the entry: the epoch, when, how long
// the load took, and with a grace period the value again, kept that much longer than the entry. The index is a sorted
// set scored by when an entry's shadow expires (its entry's expiry plus the grace period, the same order): a full
// index evicts the entry that expires first (names of expired entries, scored lowest, go before any live one), its
// value and shadow too, since what the index no longer names could not be invalidated; the index itself lives as long
// as its longest-lived shadow, so a write always reaches every fallback copy. Replies 1 (stored) or 0 (a write got
// there first) per fill.
const fillManyScript = `
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function fill(k, a)
  if ARGV[a + 4] ~= "" and redis.call("GET", KEYS[k + 3]) == ARGV[a + 4] then redis.call("DEL", KEYS[k + 3]) end
  if redis.call("GET", KEYS[k + 2]) ~= ARGV[a + 3] then return 0 end
  redis.call("SET", KEYS[k + 1], ARGV[a + 1], "PX", ARGV[a + 2])
  if redis.call("PTTL", KEYS[k + 2]) > tonumber(ARGV[a + 2]) then redis.call("PEXPIRE", KEYS[k + 2], ARGV[a + 2]) end
  if ARGV[a + 6] == "" then return 1 end
  local kept = tonumber(ARGV[a + 2]) + tonumber(ARGV[a + 6])
  redis.call("DEL", KEYS[k + 4])
  if tonumber(ARGV[a + 6]) > 0 then
    redis.call("HSET", KEYS[k + 4], "epoch", ARGV[#ARGV], "at", now, "load", ARGV[a + 5], "value", ARGV[a + 1])
  else
    redis.call("HSET", KEYS[k + 4], "epoch", ARGV[#ARGV], "at", now, "load", ARGV[a + 5])
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

// Applies removals in one step. KEYS, per removal: a slot's guards, entries, then the keys also removed (shadows:
// bookkeeping, so not counted); or an index's guard, then the index. ARGV: fresh stamp, guard ttl (ms), then per
// removal "k" and its numbers of guards, entries and others; or "i", the entries' prefix and the shadows' prefix. An
// index's removal is one command whose work is the entries it names (and their shadows), so neither the rest of the
// database nor its size can slow it; those keys are not in KEYS: right on one Redis, and in a cluster the pages and
// their index share one hash slot (Keys.ts). Replies how many entries each removal found.
const invalidateManyScript = `
local k, a, removed = 0, 3, {}
while a <= #ARGV do
  local count = 0
  if ARGV[a] == "k" then
    local guards, entries, others = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    for i = k + 1, k + guards do redis.call("SET", KEYS[i], ARGV[1], "PX", ARGV[2]) end
    for i = k + guards + 1, k + guards + entries do count = count + redis.call("DEL", KEYS[i]) end
    for i = k + guards + entries + 1, k + guards + entries + others do redis.call("DEL", KEYS[i]) end
    k, a = k + guards + entries + others, a + 4
  else
    redis.call("SET", KEYS[k + 1], ARGV[1], "PX", ARGV[2])
    for _, key in ipairs(redis.call("ZRANGE", KEYS[k + 2], 0, -1)) do
      count = count + redis.call("DEL", key)
      redis.call("DEL", ARGV[a + 2] .. string.sub(key, #ARGV[a + 1] + 1))
    end
    redis.call("DEL", KEYS[k + 2])
    k, a = k + 2, a + 3
  end
  removed[#removed + 1] = count
end
return removed`

// KEYS: shadow[, index, entry]. ARGV: the epoch. The fallback copy and its age (ms), unless the index no longer names
// the entry or the copy was kept under another epoch.
const staleScript = `
if KEYS[2] and not redis.call("ZSCORE", KEYS[2], KEYS[3]) then return false end
local copy = redis.call("HMGET", KEYS[1], "value", "at", "epoch")
if not copy[1] or copy[3] ~= ARGV[1] then return false end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return {copy[1], now - tonumber(copy[2])}`

/** The scripts, defined on every connection (each node of a cluster loads them on first use). */
interface Scripts {
  cacheLookupMany(
    keyCount: number,
    ...keysThenArgs: Array<string | number>
  ): Promise<Array<[0 | 1 | 2, string?, (string | number)?, number?]>>
  cacheFillMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<0 | 1>>
  cacheInvalidateMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<number>>
  cacheStale(keyCount: number, ...keysThenArgs: Array<string>): Promise<[string, number] | null>
  cacheClaim(
    entry: string,
    guard: string,
    lease: string,
    ...args: Array<string | number>
  ): Promise<[0, string, string?]>
}
type Client = (Redis | Cluster) & Scripts

const absent: Lookup = { _tag: "Absent" }

/** A `host:port` of a Sentinel or a cluster node. */
export interface Address {
  readonly host: string
  readonly port: number
}

/**
 * One Redis (the default); a master that Sentinels promote replicas to, whom the service asks for the master and
 * follows through every failover; or a Redis Cluster, whose masters each hold a share of the keys.
 */
export type Topology =
  | { readonly _tag: "Single" }
  | { readonly _tag: "Sentinel"; readonly sentinels: ReadonlyArray<Address>; readonly name: string }
  | { readonly _tag: "Cluster"; readonly nodes: ReadonlyArray<Address> }

export interface RedisCacheOptions {
  /**
   * `redis://` or `rediss://`; redacted, as it may carry a password. With Sentinels or a cluster its user, password,
   * database and TLS apply to the nodes they name, and its host is not used.
   */
  readonly url: Redacted.Redacted
  /** The longest one command may take (then a CacheError); also bounds connecting. */
  readonly timeout: Duration.DurationInput
  readonly topology?: Topology
}

/** Stamps handed out with a miss or a claim carry the epoch of the lookup that made them: `<epoch>~<guard stamp>`. */
const epochStamp = (epoch: string, stamp: string) => `${epoch}~${stamp}`
const splitStamp = (stamp: string) => {
  const at = stamp.indexOf("~")
  return at < 0 ? { epoch: "", stamp } : { epoch: stamp.slice(0, at), stamp: stamp.slice(at + 1) }
}

/** What tells one Redis history from another: the process (`run_id`) and its replication history (`master_replid`). */
const historyOf = (server: string, replication: string) => {
  const field = (text: string, name: string) => new RegExp(`^${name}:(\\S+)`, "m").exec(text)?.[1]
  return {
    identity: `${field(server, "run_id")}:${field(replication, "master_replid")}`,
    role: field(replication, "role")
  }
}

const mastersTotal = labels({ state: "total" })
const mastersAnswering = labels({ state: "answering" })

const unverified = new Error("this Redis's history is not checked yet")

const defineScripts = (client: Redis | Cluster) => {
  client.defineCommand("cacheLookupMany", { lua: lookupManyScript })
  client.defineCommand("cacheFillMany", { lua: fillManyScript })
  client.defineCommand("cacheInvalidateMany", { lua: invalidateManyScript })
  client.defineCommand("cacheStale", { lua: staleScript })
  client.defineCommand("cacheClaim", { numberOfKeys: 3, lua: claimLua })
  return client as Client
}

/** The user, password and TLS of a `redis://` or `rediss://` URL, for the nodes Sentinels or a cluster name. */
const credentialsOf = (url: string) => {
  const parsed = new URL(url)
  return {
    ...(parsed.username === "" ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === "rediss:" ? { tls: {} } : {})
  }
}

const connect = (options: RedisCacheOptions) =>
  Effect.gen(function* () {
    const url = Redacted.value(options.url)
    const timeout = Duration.toMillis(options.timeout)
    const topology = options.topology ?? { _tag: "Single" }
    const runtime = yield* Effect.runtime()
    const log = Runtime.runSync(runtime)

    const connection = {
      // Fail fast: with the offline queue off and one retry, a dead Redis costs a request microseconds, not seconds;
      // the command timeout is what catches a Redis that accepts connections but does not answer.
      maxRetriesPerRequest: 1,
      // A command sent before a reconnection is never sent again after it: the Redis there may be another history,
      // which the epoch check must see first.
      autoResendUnfulfilledCommands: false,
      commandTimeout: timeout,
      connectTimeout: Math.max(timeout, 1000)
    }
    const retryStrategy = (attempt: number) => Math.min(attempt * 100, 2000)
    const client = defineScripts(
      topology._tag === "Cluster"
        ? new Cluster(
            topology.nodes.map(({ host, port }) => ({ host, port })),
            {
              enableOfflineQueue: false,
              // One pipeline per master for the commands of one turn: the per-slot scripts of a batch go out together.
              enableAutoPipelining: true,
              scaleReads: "master",
              // A command abandoned by its timeout is not chased around the cluster for long.
              maxRedirections: 4,
              lazyConnect: true,
              clusterRetryStrategy: retryStrategy,
              // A lost master's connection keeps trying (ioredis would drop it and wait for a MOVED that the trust
              // check never lets a command provoke), so caching on its slots resumes when it is back.
              clusterNodeRetryStrategy: retryStrategy,
              // Failovers and resharding inside the cluster are learnt without waiting for a MOVED.
              slotsRefreshInterval: 5000,
              slotsRefreshTimeout: Math.max(timeout, 1000),
              redisOptions: { ...connection, ...credentialsOf(url) }
            }
          )
        : new Redis(url, {
            ...connection,
            enableOfflineQueue: false,
            retryStrategy,
            lazyConnect: true,
            // Commands issued in one turn of the event loop go out in one write: a socket write was the largest single
            // cost of a cache hit, and under concurrency this shares it between requests (README, "Benchmarks").
            enableAutoPipelining: true,
            ...(topology._tag === "Sentinel"
              ? {
                  sentinels: topology.sentinels.map(({ host, port }) => ({ host, port })),
                  name: topology.name,
                  // Told of a failover by the Sentinels at once, instead of when the old master stops answering.
                  failoverDetector: true,
                  // ioredis speaks plain TCP to a master found through Sentinels unless told otherwise.
                  enableTLSForSentinelMode: url.startsWith("rediss:"),
                  sentinelRetryStrategy: retryStrategy
                }
              : {})
          })
    )

    // One log line per transition, not one per failed request.
    let up = false
    client.on("ready", () => {
      up = true
      log(Effect.logInfo("cache connected"))
    })
    client.on("error", (error: Error) => {
      if (!up) return
      up = false
      log(Effect.logWarning("cache unreachable; serving from the database until it returns", error.message))
    })
    client.on("end", () => {
      up = false
      // ioredis gives up for good when a reconnection is cut short: with Sentinels, the failover detector closes the
      // connection while it is still asking them for the master (seen in 1 of 3 killed masters under load: the cache
      // never came back). Only the layer's release ends it; anything else starts over, as its own retries would.
      if (released.has(client) || client instanceof Cluster) return
      setTimeout(() => {
        if (!released.has(client) && client.status === "end") client.connect().catch(() => undefined)
      }, 500).unref()
    })

    // Waiting briefly lets a healthy Redis be ready for the first request; an absent one only makes us start degraded.
    yield* Effect.tryPromise(() => client.connect()).pipe(
      Effect.timeout(Duration.millis(Math.max(timeout, 1000))),
      Effect.catchAll(() => Effect.logWarning("cache unreachable at start; starting degraded, will keep trying")),
      // Wall-clock time even under a TestClock: this waits on a real socket.
      Effect.withClock(Clock.make())
    )
    return client
  })

// quit() waits for Redis to answer, which after a long outage may be never: bound it with a plain timer (a
// finalizer is uninterruptible, and tests may run it under the TestClock), then drop the socket.
/** Clients the layer has let go of: their end is final. */
const released = new WeakSet<Redis | Cluster>()

const release = (client: Redis | Cluster) =>
  Effect.promise(
    () =>
      new Promise<void>((resolve) => {
        released.add(client)
        const bound = setTimeout(resolve, 1000)
        client
          .quit()
          .catch(() => undefined)
          .finally(() => {
            clearTimeout(bound)
            resolve()
          })
      })
  ).pipe(Effect.ensuring(Effect.sync(() => client.disconnect())))

export const make = (options: RedisCacheOptions) =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(connect(options), release)
    const epochs = yield* CacheEpoch
    const processStamp = `${process.pid.toString(36)}.${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 8)}`
    let stamps = 0
    const freshStamp = () => `${processStamp}.${(++stamps).toString(36)}`
    const timeout = Duration.toMillis(options.timeout)
    const cluster = client instanceof Cluster ? client : undefined
    // With Sentinels a write's invalidations count as done only once a replica has them too: a failover promotes a
    // replica, and replication is asynchronous. WAIT's own bound leaves room for the command timeout around it.
    const confirmations = options.topology?._tag === "Sentinel" ? 1 : 0
    const waitMillis = Math.max(1, Math.floor(timeout / 2))

    const runFork = Runtime.runFork(yield* Effect.runtime<never>())

    /** The connection to the node `host:port`, if the cluster client holds one (it drops a node it lost). */
    const nodeNamed = (name: string) =>
      cluster!.nodes("all").find((node) => `${node.options.host}:${node.options.port}` === name)

    /** The connection a key's commands go to: the one Redis, or the master serving the key's hash slot. */
    const nodeOf = (key: string): Redis | undefined => {
      if (cluster === undefined) return client as Redis
      const master = cluster.slots[calculateSlot(key)]?.[0]
      return master === undefined ? undefined : nodeNamed(master)
    }

    /** Every master the slot map names, lost ones too: what a cluster's health is counted against. */
    const mastersOfSlots = () =>
      [...new Set(cluster!.slots.map((owners) => owners?.[0]))].filter((name) => name !== undefined)

    // Entries are trusted only on a connection whose Redis history was checked against the epoch record; each
    // reconnection makes a new stream, and until it is checked every lookup, fill and fallback copy on it is skipped
    // (the read is answered from the database). Checking the stream when a command is issued is checking the Redis it
    // reaches: auto-pipelining writes it out at the next setImmediate, and a new stream only comes from the retry
    // timer (100 ms at least), which cannot fire before that; nothing is resent after a reconnection (above).
    // Checks run one at a time, so the epoch only moves forward: a history unseen under the current epoch starts a
    // new one, which keeps every history the old one had seen (Cache/Epoch.ts), so other checked nodes stay trusted.
    let epoch: string | undefined
    const checked = new WeakMap<Redis, unknown>()
    const checking = new Set<Redis>()
    const roles = new WeakMap<Redis, string | undefined>()
    const oneCheckAtATime = yield* Effect.makeSemaphore(1)
    const check = (node: Redis) =>
      Effect.gen(function* () {
        // A cluster connects to a node on its first command.
        if (node.status === "wait") yield* Effect.tryPromise(() => node.connect())
        const stream = node.stream
        if (node.status !== "ready") return
        const [server, replication] = yield* Effect.tryPromise(() =>
          Promise.all([node.info("server"), node.info("replication")])
        )
        if (node.stream !== stream) return
        const { identity, role } = historyOf(server, replication)
        if (role !== "master") {
          // Scripts write, so a replica refuses them anyway; said once, not on every retry.
          if (roles.get(node) !== role)
            yield* Effect.logWarning(`a cache node is a ${role}, not a master: not caching there`)
          roles.set(node, role)
          return
        }
        roles.set(node, role)
        const trusted = yield* epochs.trust(identity)
        if (node.stream !== stream || node.status !== "ready") return
        if (trusted !== epoch) yield* Effect.logInfo("cache epoch checked", { epoch: trusted })
        epoch = trusted
        checked.set(node, stream)
      }).pipe(
        oneCheckAtATime.withPermits(1),
        Effect.catchAll((error) =>
          Effect.logDebug("cache history check failed; retried with the next operation", error)
        ),
        Effect.ensuring(Effect.sync(() => checking.delete(node)))
      )
    const startCheck = (node: Redis) => {
      if (checking.has(node)) return
      checking.add(node)
      runFork(check(node))
    }
    const watch = (node: Redis) => node.on("ready", () => startCheck(node))
    if (cluster === undefined) watch(client as Redis)
    else {
      cluster.on("+node", watch)
      cluster.nodes("all").forEach(watch)
    }

    /** The epoch under which `key`'s node is trusted now, or none while it is not checked (which starts the check). */
    const epochFor = (key: string) => {
      const node = nodeOf(key)
      if (node === undefined) return undefined
      if (epoch !== undefined && node.status === "ready" && checked.get(node) === node.stream) return epoch
      if (node.status === "ready" || node.status === "wait") startCheck(node)
      return undefined
    }

    // The first requests find the cache checked when Redis is there at start. The check's own steps are bounded (each
    // command by the timeout, the database by its own); this bound is for a machine too busy to finish them soon, and
    // a check cut short starts again with the first operation.
    const masters = cluster === undefined ? [client as Redis] : cluster.nodes("master")
    yield* Effect.forEach(masters, check, { concurrency: "unbounded", discard: true }).pipe(
      Effect.timeout(Duration.millis(Math.max(timeout * 4, 5000))),
      Effect.ignore,
      Effect.withClock(Clock.make())
    )

    const attempt = <A>(op: CacheOperation, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new CacheError({ op, reason: "failed", cause }) })

    const kind = cluster !== undefined ? "cluster" : options.topology?._tag === "Sentinel" ? "sentinel" : "single"
    cacheTopology.unsafeUpdate(1, labels({ topology: kind }))
    // How many masters answer, for /metrics: a master counts while its connection is ready (a ping each, per scrape,
    // would make scraping cost the cache); /health pings them.
    if (cluster !== undefined) {
      const count = () => {
        const masters = mastersOfSlots()
        cacheMasters.unsafeUpdate(masters.length, mastersTotal)
        const ready = masters.filter((name) => nodeNamed(name)?.status === "ready")
        cacheMasters.unsafeUpdate(ready.length, mastersAnswering)
      }
      count()
      for (const event of ["+node", "-node", "node error", "refresh", "ready"]) cluster.on(event, count)
      const watchStatus = (node: Redis) => ["ready", "close", "end"].forEach((event) => node.on(event, count))
      cluster.on("+node", watchStatus)
      cluster.nodes("all").forEach(watchStatus)
    }

    const topology: Effect.Effect<CacheTopology> =
      cluster === undefined
        ? Effect.succeed({ kind })
        : Effect.map(
            Effect.forEach(
              mastersOfSlots(),
              (name) =>
                Effect.tryPromise(() => nodeNamed(name)!.ping()).pipe(
                  Effect.timeout(Duration.millis(timeout)),
                  Effect.isSuccess,
                  Effect.withClock(Clock.make())
                ),
              { concurrency: "unbounded" }
            ),
            (answers) => ({
              kind,
              masters: { total: answers.length, answering: answers.filter((answered) => answered).length }
            })
          )

    /** An operation that reads or writes entries: only under a checked epoch, on every node its keys go to. */
    const trustedAttempt = <A>(op: CacheOperation, keys: ReadonlyArray<string>, run: (epoch: string) => Promise<A>) =>
      Effect.suspend(() => {
        let trusted: string | undefined
        for (const key of keys) {
          trusted = epochFor(key)
          if (trusted === undefined) return Effect.fail(new CacheError({ op, reason: "skipped", cause: unverified }))
        }
        const now = trusted!
        return attempt(op, () => run(now))
      })

    /** Runs a write's invalidation script, then, with replicas to confirm it, WAIT on the same connection. */
    const invalidation = <A>(script: (target: Scripts) => Promise<A>) =>
      confirmations === 0
        ? attempt("invalidate", () => script(client))
        : attempt("invalidate", async () => {
            const pipeline = (client as Redis).pipeline()
            void script(pipeline as unknown as Scripts)
            pipeline.wait(confirmations, waitMillis)
            const [[failed, removed], [waitFailed, confirmed]] = (await pipeline.exec()) as [
              [Error | null, A],
              [Error | null, number]
            ]
            if (failed) throw failed
            if (waitFailed) throw waitFailed
            if (confirmed < confirmations)
              throw new Error(`no replica confirmed the invalidation within ${waitMillis} ms`)
            return removed
          })

    /**
     * Runs `run` once per hash slot of `items` (in a cluster a script touches one slot; the calls of one turn still
     * go out as one pipeline per master) and puts the replies back in the items' order.
     */
    const perSlot = async <I, R>(
      items: ReadonlyArray<I>,
      keyOf: (item: I) => string,
      run: (group: ReadonlyArray<I>) => Promise<ReadonlyArray<R>>
    ): Promise<Array<R>> => {
      if (cluster === undefined) return [...(await run(items))]
      const groups = new Map<number, Array<number>>()
      items.forEach((item, at) => {
        const slot = calculateSlot(keyOf(item))
        const group = groups.get(slot)
        if (group === undefined) groups.set(slot, [at])
        else group.push(at)
      })
      const replies: Array<R> = new Array(items.length)
      await Promise.all(
        [...groups.values()].map(async (ats) => {
          const answered = await run(ats.map((at) => items[at]!))
          ats.forEach((at, i) => (replies[at] = answered[i]!))
        })
      )
      return replies
    }

    const lookupOf =
      (epoch: string) =>
      ([found, payload, third, load]: [0 | 1 | 2, string?, (string | number)?, number?]): Lookup => {
        if (found === 1) return { _tag: "Hit", value: payload!, ttl: third as number, load: load! }
        if (found === 2) return absent
        return { _tag: "Miss", stamp: epochStamp(epoch, payload!), lease: (third as string | undefined) ?? null }
      }

    const lookupMany = (slots: ReadonlyArray<Slot>) =>
      slots.length === 0
        ? Effect.succeed([])
        : trustedAttempt(
            "lookup",
            slots.map((slot) => slot.key),
            (epoch) =>
              perSlot(
                slots,
                (slot) => slot.key,
                async (group) => {
                  const keys: Array<string> = []
                  let roles = ""
                  for (const slot of group) {
                    // A page names its index where a product names its remembered absence; none has both.
                    keys.push(slot.key, slot.guard, slot.lease, slot.shadow, slot.index?.key ?? slot.absent ?? slot.key)
                    roles += slot.index !== undefined ? "i" : slot.absent !== undefined ? "a" : "n"
                  }
                  const replies = await client.cacheLookupMany(
                    keys.length,
                    ...keys,
                    guardTtlMillis,
                    leaseTtlMillis,
                    freshStamp(),
                    roles,
                    epoch
                  )
                  return replies.map(lookupOf(epoch))
                }
              )
          )

    const fillGroup = async (epoch: string, fills: ReadonlyArray<readonly [Slot, Fill]>) => {
      const keys: Array<string> = []
      const args: Array<string | number> = []
      for (const [slot, { grace, lease, load, stamp: given, ttl, value }] of fills) {
        // A fill of a lookup made under another epoch is void (it only gives its lease back): its guard's stamp may
        // come from a Redis history that a write's invalidation has since left behind.
        const { epoch: of, stamp } = splitStamp(given)
        // A remembered absence has no shadow ("" below) and is named by no index; a slot without one stores nothing.
        const target = value === null ? slot.absent : slot.key
        const index = value === null ? undefined : slot.index
        keys.push(target ?? "", slot.guard, slot.lease, slot.shadow, index?.key ?? target ?? "")
        args.push(
          value ?? epoch,
          Math.max(1, Math.round(Duration.toMillis(ttl))),
          // No stamp matches "": a fill without a target, or of another epoch, is refused.
          target === undefined || of !== epoch ? "" : stamp,
          lease ?? "",
          Math.round(load ?? 0),
          value === null ? "" : grace === undefined ? 0 : Math.round(Duration.toMillis(grace)),
          index?.capacity ?? "",
          index?.entries ?? "",
          index?.shadows ?? ""
        )
      }
      const stored = await client.cacheFillMany(keys.length, ...keys, ...args, epoch)
      return stored.map((one) => one === 1)
    }

    const fillMany = (fills: ReadonlyArray<readonly [Slot, Fill]>) =>
      fills.length === 0
        ? Effect.succeed([])
        : trustedAttempt(
            "fill",
            fills.map(([slot]) => slot.key),
            (epoch) =>
              perSlot(
                fills,
                ([slot]) => slot.key,
                (group) => fillGroup(epoch, group)
              )
          )

    /** The removals given, as one script; each with the same fresh stamp for the guards it moves. */
    const removalScript = (removals: ReadonlyArray<Removal>) => (target: Scripts) => {
      const keys: Array<string> = []
      const args: Array<string | number> = [freshStamp(), guardTtlMillis]
      for (const removal of removals) {
        if (removal._tag === "Keys") {
          const { also = [], guards, keys: entries } = removal
          keys.push(...guards, ...entries, ...also)
          args.push("k", guards.length, entries.length, also.length)
        } else {
          keys.push(removal.guard, removal.index.key)
          args.push("i", removal.index.entries, removal.index.shadows)
        }
      }
      return target.cacheInvalidateMany(keys.length, ...keys, ...args)
    }

    // Invalidations need no checked epoch: removing entries is right in any Redis history. In a cluster, one script per
    // hash slot (a product's keys and the pages live on different ones), issued in one turn so that they go out as one
    // pipeline per master; with Sentinels there is no cluster, so the one script is followed by WAIT.
    const invalidateMany = (removals: ReadonlyArray<Removal>): Effect.Effect<ReadonlyArray<number>, CacheError> =>
      removals.length === 0
        ? Effect.succeed([])
        : cluster === undefined
          ? invalidation(removalScript(removals))
          : attempt("invalidate", () =>
              perSlot(
                removals,
                (removal) => (removal._tag === "Keys" ? (removal.guards[0] ?? removal.keys[0]!) : removal.guard),
                (group) => removalScript(group)(client)
              )
            )

    return Cache.of({
      // Every lookup made in one turn of the event loop goes to Redis in one script (TurnBatch): under load one
      // command answers many requests, each slot looked up exactly as it would be alone.
      lookup: TurnBatch.make({ keyOf: (slot: Slot) => slot.key, fetch: lookupMany, runFork }),
      lookupMany,
      fill: (slot, fill) => Effect.map(fillMany([[slot, fill]]), (stored) => stored[0]!),
      fillMany,
      // Invalidations need no checked epoch: removing entries is right in any Redis history.
      invalidate: (keys, guards, also = []) =>
        Effect.map(invalidateMany([{ _tag: "Keys", keys, guards, also }]), (removed) => removed[0]!),
      invalidateIndexed: (index, guard) =>
        Effect.map(invalidateMany([{ _tag: "Indexed", index, guard }]), (removed) => removed[0]!),
      invalidateMany,
      stale: (slot) =>
        Effect.map(
          trustedAttempt("stale", [slot.key], (epoch) =>
            slot.index === undefined
              ? client.cacheStale(1, slot.shadow, epoch)
              : client.cacheStale(3, slot.shadow, slot.index.key, slot.key, epoch)
          ),
          (found) => (found === null ? null : { value: found[0], age: Number(found[1]) })
        ),
      claim: (slot) =>
        trustedAttempt("claim", [slot.key], async (epoch) => {
          const [, stamp, lease] = await client.cacheClaim(
            slot.key,
            slot.guard,
            slot.lease,
            freshStamp(),
            guardTtlMillis,
            leaseTtlMillis
          )
          return { stamp: epochStamp(epoch, stamp), lease: lease ?? null }
        }),
      topology,
      // A cluster answers when every master does: a master that is down leaves its keys to the database.
      ping: Effect.asVoid(
        attempt<unknown>("ping", () =>
          cluster === undefined
            ? client.ping()
            : Promise.all(
                mastersOfSlots().map((name) => {
                  const node = nodeNamed(name)
                  return node === undefined ? Promise.reject(new Error(`no connection to ${name}`)) : node.ping()
                })
              )
        )
      )
    })
  })

/** The cache in Redis at `options.url`, connected for the life of the layer; its epochs kept by `CacheEpoch`. */
export const layer = (options: RedisCacheOptions) => Layer.scoped(Cache, make(options))

/** The same, at `REDIS_URL` (or `REDIS_ADDR`) or the topology `REDIS_SENTINELS`/`REDIS_CLUSTER_NODES` name. */
export const layerConfig = Layer.unwrapEffect(
  Effect.map(
    Effect.all({
      url: AppConfig.redisConnection,
      timeout: AppConfig.cacheTimeout,
      topology: AppConfig.redisTopology
    }),
    layer
  )
)
