// What looking up a turn's hits costs Redis and this process: `node bench/lookupCost.mjs [dist] [slots] [calls]`, after
// `npm run build` (or with an earlier commit's build folder, for an A/B).
//
// On a private redis-server holding 1,000 products as the service fills them (entry and shadow), looks up `slots`
// random products per call (28, about a batch at 50 connections), `calls` times with 50 calls in flight, in three
// ways: the lookup script the service sends for what the MGET leaves (`cacheLookupMany`), the one MGET of entry,
// shadow and absent key that answers a hit (Shadow.ts), and the same MGET without the absent key. It prints the CPU per
// slot of Redis (INFO cpu) and of this process (ioredis building the command and reading the reply): the first is
// what the bench's load generator loses, as it shares its core with Redis.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { startRedis } from "./lib/servers.mjs"

const [distArg = "dist", slotsArg = "28", callsArg = "20000"] = process.argv.slice(2)
const dist = resolve(import.meta.dirname, "..", distArg)
const slots = Number(slotsArg)
const calls = Number(callsArg)
const { define } = await import(pathToFileURL(join(dist, "Cache/Redis/Scripts.js")).href)
const CacheKeys = await import(pathToFileURL(join(dist, "Cache/Keys.js")).href)
const tmp = mkdtempSync(join(tmpdir(), "lookup-cost-"))
const redis = await startRedis({ taken: new Set(), tmp })
const client = define(redis.client)

const epoch = "bench.epoch.1"
const value = JSON.stringify({
  id: 1,
  name: "Bench product 1",
  description: "Product 1 of the benchmark catalog, a description of ordinary length for a product page.",
  price: 42.99,
  stock: 13,
  category: "Books",
  created_at: "2026-12-05T11:55:42.016Z",
  updated_at: "2026-12-05T11:55:42.016Z"
})
// The service's own key names, with the default prefix.
const keysOf = CacheKeys.make("product:").product
const fill = client.pipeline()
const now = Date.now()
for (let id = 1; id <= 1000; id++) {
  const { key, shadow } = keysOf(id)
  fill.set(key, value, "PX", 3_600_000)
  // The shadow as the fill script writes it (Scripts.ts): epoch, loaded at, load µs, expires at.
  fill.set(shadow, `${epoch}|${now}|120|${now + 3_600_000}`, "PX", 3_600_000)
}
await fill.exec()

const redisCpu = async () => {
  const info = await client.info("cpu")
  const field = (/** @type {string} */ name) => Number(new RegExp(`^${name}:([\\d.]+)`, "m").exec(info)?.[1] ?? 0)
  return 1e6 * (field("used_cpu_user") + field("used_cpu_sys"))
}
const randomIds = () => Array.from({ length: slots }, () => 1 + Math.floor(Math.random() * 1000))

/** @type {Record<string, (ids: Array<number>) => Promise<unknown>>} */
const ways = {
  "lookup script": (ids) => {
    const keys = ids.flatMap((id) => {
      const slot = keysOf(id)
      return [slot.key, slot.guard, slot.lease, slot.shadow, slot.absent]
    })
    return client.cacheLookupMany(keys.length, ...keys, 30_000, 1_000, "token", "a".repeat(ids.length), epoch)
  },
  "MGET entry, shadow, absent": (ids) =>
    client.mget(
      ids.flatMap((id) => {
        const slot = keysOf(id)
        return [slot.key, slot.shadow, slot.absent]
      })
    ),
  "MGET entry, shadow": (ids) =>
    client.mget(
      ids.flatMap((id) => {
        const slot = keysOf(id)
        return [slot.key, slot.shadow]
      })
    )
}

try {
  for (const [name, way] of Object.entries(ways)) {
    await way(randomIds())
    const redisBefore = await redisCpu()
    const ownBefore = process.cpuUsage()
    for (let done = 0; done < calls; done += 50) await Promise.all(Array.from({ length: 50 }, () => way(randomIds())))
    const own = process.cpuUsage(ownBefore)
    const perSlot = (/** @type {number} */ micros) => (micros / calls / slots).toFixed(2)
    console.log(
      `${name.padEnd(28)} µs per slot: Redis ${perSlot((await redisCpu()) - redisBefore)}, ` +
        `this process ${perSlot(own.user + own.system)}`
    )
  }
} finally {
  redis.client.disconnect()
  redis.child.kill("SIGKILL")
  rmSync(tmp, { recursive: true, force: true })
}
