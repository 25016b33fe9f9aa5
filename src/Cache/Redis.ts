import { Duration, Effect, Layer, Runtime } from "effect"
import { Cluster } from "ioredis"
import type { Redis } from "ioredis"
import * as AppConfig from "../AppConfig.js"
import { Cache, CacheError, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { CacheOperation, Fill, Lookup, Removal, Slot } from "../Cache.js"
import { CacheEpoch } from "./Epoch.js"
import { connect, release } from "./Redis/Connection.js"
import type { RedisCacheOptions } from "./Redis/Connection.js"
import * as History from "./Redis/History.js"
import * as Masters from "./Redis/Masters.js"
import * as Shadow from "./Redis/Shadow.js"
import { pushSlotKeys, removalInputs } from "./Redis/Scripts.js"
import type { Scripts } from "./Redis/Scripts.js"
import * as TurnBatch from "../TurnBatch.js"

export type { Address, RedisCacheOptions, Topology } from "./Redis/Connection.js"

const absent: Lookup = { _tag: "Absent" }

/** Stamps handed out with a miss or a claim carry the epoch of the lookup that made them: `<epoch>~<guard stamp>`. */
const epochStamp = (epoch: string, stamp: string) => `${epoch}~${stamp}`
const splitStamp = (stamp: string) => {
  const at = stamp.indexOf("~")
  return at < 0 ? { epoch: "", stamp } : { epoch: stamp.slice(0, at), stamp: stamp.slice(at + 1) }
}

const unverified = new Error("this Redis's history is not checked yet")

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

    const kind = cluster !== undefined ? "cluster" : options.topology?._tag === "Sentinel" ? "sentinel" : "single"
    const masters = Masters.make(client, kind, timeout)
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const history = yield* History.make({
      epochs,
      single: cluster === undefined ? (client as Redis) : undefined,
      cluster,
      timeout
    })

    const attempt = <A>(op: CacheOperation, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new CacheError({ op, reason: "failed", cause }) })

    /**
     * An operation that reads or writes entries: only under a checked epoch, on every node its keys go to (one Redis
     * is checked once for the whole batch).
     */
    const trustedAttempt = <A>(op: CacheOperation, keys: ReadonlyArray<string>, run: (epoch: string) => Promise<A>) =>
      Effect.suspend(() => {
        let trusted: string | undefined
        for (const key of masters.cluster === undefined ? keys.slice(0, 1) : keys) {
          trusted = history.epochOf(masters.nodeOf(key))
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

    /** The lookup script over `group`: a hit, a remembered absence, or a miss with its claim, per slot. */
    const lookupScript = async (
      epoch: string,
      group: ReadonlyArray<Slot>,
      observe?: (slots: ReadonlyArray<Slot>, found: ReadonlyArray<Lookup>) => void
    ) => {
      const keys: Array<string> = []
      let roles = ""
      for (const slot of group) {
        // A page names its index where a product names its remembered absence; none has both.
        pushSlotKeys(keys, slot, slot.key, slot.index?.key ?? slot.absent ?? slot.key)
        roles += slot.index !== undefined ? "i" : slot.absent !== undefined ? "a" : "n"
      }
      const args = [guardTtlMillis, leaseTtlMillis, freshStamp(), roles, epoch]
      const replies = await client.cacheLookupMany(keys.length, ...keys, ...args)
      const found = replies.map(([found, payload, third, load]): Lookup => {
        if (found === 1) return { _tag: "Hit", value: payload!, ttl: third as number, load: load! }
        if (found === 2) return absent
        return { _tag: "Miss", stamp: epochStamp(epoch, payload!), lease: (third as string | undefined) ?? null }
      })
      observe?.(group, found)
      return found
    }

    const shadows = Shadow.make(client)
    const lookupMany = (slots: ReadonlyArray<Slot>) =>
      slots.length === 0
        ? Effect.succeed([])
        : trustedAttempt(
            "lookup",
            slots.map((slot) => slot.key),
            (epoch) =>
              masters.perSlot(
                slots,
                (slot) => slot.key,
                // Hits are read first with one MGET (Shadow.ts); only what that does not settle goes to the script.
                // Skipping it adds no step: a step more here changed which reader of a key took its flight.
                (group) =>
                  shadows.skips()
                    ? lookupScript(epoch, group, shadows.observe)
                    : shadows.lookup(group, epoch, history.redisNow(masters.nodeOf(group[0]!.key)), (rest) =>
                        lookupScript(epoch, rest)
                      )
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
        pushSlotKeys(keys, slot, target ?? "", index?.key ?? target ?? "")
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
      const stored = await client.cacheFillMany(keys.length, ...keys, ...args, leaseTtlMillis, epoch)
      return stored.map((one) => one === 1)
    }

    const fillMany = (fills: ReadonlyArray<readonly [Slot, Fill]>) =>
      fills.length === 0
        ? Effect.succeed([])
        : trustedAttempt(
            "fill",
            fills.map(([slot]) => slot.key),
            (epoch) =>
              masters.perSlot(
                fills,
                ([slot]) => slot.key,
                (group) => fillGroup(epoch, group)
              )
          )

    /** The removals given, as one script; each with the same fresh stamp for the guards it moves. */
    const removalScript = (removals: ReadonlyArray<Removal>) => (target: Scripts) =>
      target.cacheInvalidateMany(...removalInputs(removals, freshStamp(), guardTtlMillis))

    // Invalidations need no checked epoch: removing entries is right in any Redis history. In a cluster, one script per
    // hash slot (a product's keys and the pages live on different ones), issued in one turn so that they go out as one
    // pipeline per master; with Sentinels there is no cluster, so the one script is followed by WAIT.
    const invalidateMany = (removals: ReadonlyArray<Removal>): Effect.Effect<ReadonlyArray<number>, CacheError> =>
      removals.length === 0
        ? Effect.succeed([])
        : cluster === undefined
          ? invalidation(removalScript(removals))
          : attempt("invalidate", () =>
              masters.perSlot(
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
      topology: masters.topology,
      ping: Effect.asVoid(attempt("ping", masters.ping))
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
