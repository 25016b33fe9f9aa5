import { Clock, Duration, Effect, Redacted, Runtime } from "effect"
import { Cluster, Redis } from "ioredis"
import * as Scripts from "./Scripts.js"

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

/** The user, password and TLS of a `redis://` or `rediss://` URL, for the nodes Sentinels or a cluster name. */
const credentialsOf = (url: string) => {
  const parsed = new URL(url)
  return {
    ...(parsed.username === "" ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(parsed.protocol === "rediss:" ? { tls: {} } : {})
  }
}

export const connect = (options: RedisCacheOptions) =>
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
    const client = Scripts.define(
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
            // No auto-pipelining on one Redis: the service already gathers a turn's lookups, and a turn's writes'
            // invalidations, into one command (TurnBatch), so ioredis's own gathering found nothing more to join and
            // cost every command a pipeline of its own. Turning it off cut a hit's CPU by a fifth, a batch with a miss
            // by about 100 µs, and the hit p99 from ~20 ms to ~3 ms (bench/README.md).
            enableAutoPipelining: false,
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

export const release = (client: Redis | Cluster) =>
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
