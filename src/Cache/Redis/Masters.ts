import { Clock, Duration, Effect } from "effect"
import calculateSlot from "cluster-key-slot"
import { Cluster } from "ioredis"
import type { Redis } from "ioredis"
import type { CacheTopology } from "../../Cache.js"
import { cacheMasters, cacheTopology, labels } from "../../Metrics.js"

const mastersTotal = labels({ state: "total" })
const mastersAnswering = labels({ state: "answering" })

export type Kind = CacheTopology["kind"]

/**
 * Which master serves a key, and how many answer: the one Redis (or the master Sentinels name, which the client
 * follows itself), or the master of the key's hash slot in a cluster. Also keeps `cache_topology` and, for a
 * cluster, `cache_masters` current.
 */
export const make = (client: Redis | Cluster, kind: Kind, timeout: number) => {
  const cluster = client instanceof Cluster ? client : undefined

  /** The connection to the node `host:port`, if the cluster client holds one (it drops a node it lost). */
  const nodeNamed = (name: string) =>
    cluster!.nodes("all").find((node) => `${node.options.host}:${node.options.port}` === name)

  /** Every master the slot map names, lost ones too: what a cluster's health is counted against. */
  const ofSlots = () => [...new Set(cluster!.slots.map((owners) => owners?.[0]))].filter((name) => name !== undefined)

  /** The connection a key's commands go to: the one Redis, or the master serving the key's hash slot. */
  const nodeOf = (key: string): Redis | undefined => {
    if (cluster === undefined) return client as Redis
    const master = cluster.slots[calculateSlot(key)]?.[0]
    return master === undefined ? undefined : nodeNamed(master)
  }

  cacheTopology.unsafeUpdate(1, labels({ topology: kind }))
  // How many masters answer, for /metrics: a master counts while its connection is ready (a ping each, per scrape,
  // would make scraping cost the cache); /health pings them.
  if (cluster !== undefined) {
    const count = () => {
      const masters = ofSlots()
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
            ofSlots(),
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

  // A cluster answers when every master does: a master that is down leaves its keys to the database.
  const ping = (): Promise<unknown> =>
    cluster === undefined
      ? client.ping()
      : Promise.all(
          ofSlots().map((name) => {
            const node = nodeNamed(name)
            return node === undefined ? Promise.reject(new Error(`no connection to ${name}`)) : node.ping()
          })
        )

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

  return { cluster, nodeOf, perSlot, topology, ping } as const
}
