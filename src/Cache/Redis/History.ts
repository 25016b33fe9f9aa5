import { Clock, Duration, Effect, Runtime } from "effect"
import type { Cluster, Redis } from "ioredis"
import type { CacheEpoch } from "../Epoch.js"

/** What tells one Redis history from another: the process (`run_id`) and its replication history (`master_replid`). */
const historyOf = (server: string, replication: string) => {
  const field = (text: string, name: string) => new RegExp(`^${name}:(\\S+)`, "m").exec(text)?.[1]
  return {
    identity: `${field(server, "run_id")}:${field(replication, "master_replid")}`,
    role: field(replication, "role"),
    timeMicros: Number(field(server, "server_time_usec"))
  }
}

export interface HistoryOptions {
  readonly epochs: CacheEpoch["Type"]
  /** The connections to check: the one Redis, or every node of a cluster (those it connects later too). */
  readonly single: Redis | undefined
  readonly cluster: Cluster | undefined
  /** Bounds the checks made at start. */
  readonly timeout: number
}

/**
 * Entries are trusted only on a connection whose Redis history was checked against the epoch record; each
 * reconnection makes a new stream, and until it is checked every lookup, fill and fallback copy on it is skipped (the
 * read is answered from the database). Checking the stream when a command is issued is checking the Redis it reaches:
 * auto-pipelining writes it out at the next setImmediate, and a new stream only comes from the retry timer (100 ms at
 * least), which cannot fire before that; nothing is resent after a reconnection (Connection.ts).
 * Checks run one at a time, so the epoch only moves forward: a history unseen under the current epoch starts a new
 * one, which keeps every history the old one had seen (Epoch.ts), so other checked nodes stay trusted.
 */
export const make = ({ cluster, epochs, single, timeout }: HistoryOptions) =>
  Effect.gen(function* () {
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let epoch: string | undefined
    const checked = new WeakMap<Redis, unknown>()
    const checking = new Set<Redis>()
    const roles = new WeakMap<Redis, string | undefined>()
    const clockOffsets = new WeakMap<Redis, number>()
    const oneCheckAtATime = yield* Effect.makeSemaphore(1)

    const check = (node: Redis) =>
      Effect.gen(function* () {
        // A cluster connects to a node on its first command.
        if (node.status === "wait") yield* Effect.tryPromise(() => node.connect())
        const stream = node.stream
        if (node.status !== "ready") return
        const asked = Date.now()
        const [server, replication] = yield* Effect.tryPromise(() =>
          Promise.all([node.info("server"), node.info("replication")])
        )
        if (node.stream !== stream) return
        const { identity, role, timeMicros } = historyOf(server, replication)
        // Redis's clock against ours, read half way through the round trip (Redis before 6.2 does not tell it).
        clockOffsets.set(node, Number.isFinite(timeMicros) ? timeMicros / 1000 - (asked + Date.now()) / 2 : 0)
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
    if (cluster === undefined) watch(single!)
    else {
      cluster.on("+node", watch)
      cluster.nodes("all").forEach(watch)
    }

    // The first requests find the cache checked when Redis is there at start. The check's own steps are bounded (each
    // command by the timeout, the database by its own); this bound is for a machine too busy to finish them soon, and
    // a check cut short starts again with the first operation.
    yield* Effect.forEach(cluster === undefined ? [single!] : cluster.nodes("master"), check, {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.timeout(Duration.millis(Math.max(timeout * 4, 5000))), Effect.ignore, Effect.withClock(Clock.make()))

    /** The epoch under which `node` is trusted now, or none while it is not checked (which starts the check). */
    const epochOf = (node: Redis | undefined): string | undefined => {
      if (node === undefined) return undefined
      if (epoch !== undefined && node.status === "ready" && checked.get(node) === node.stream) return epoch
      if (node.status === "ready" || node.status === "wait") startCheck(node)
      return undefined
    }
    /** Redis's time now on `node` (milliseconds), from its clock as read when its history was checked. */
    const redisNow = (node: Redis | undefined) => Date.now() + ((node && clockOffsets.get(node)) ?? 0)
    return { epochOf, redisNow } as const
  })
