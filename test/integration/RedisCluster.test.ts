import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import parsePrometheus from "parse-prometheus-text-format"
import { RedisLive } from "../../src/Services.js"
import * as Databases from "../support/Databases.js"
import * as RedisCluster from "../support/RedisCluster.js"
import * as TestApp from "../support/TestApp.js"
import { App, eventually, replyBoundMillis, timed } from "../support/TestApp.js"
import type { TestApp as Client } from "../support/TestApp.js"

// The service on a Redis Cluster of three masters (test/support/RedisCluster.ts): hash-tagged keys spread over the
// masters, every script on one slot, and a lost master answered from the database while the others keep caching.

const cacheTimeout = 800

const onCluster = Effect.gen(function* () {
  const cluster = yield* RedisCluster.make()
  const database = yield* Databases.make
  const env = {
    REDIS_CLUSTER_NODES: cluster.nodes.map(({ host, port }) => `${host}:${port}`).join(","),
    CACHE_TIMEOUT: `${cacheTimeout}ms`
  }
  const instance = Effect.map(Layer.build(TestApp.layer({ cache: RedisLive, database, env })), Context.get(App))
  return { cluster, instance }
})

const create = (app: Client, name: string, stock = 1) =>
  Effect.map(app.request("POST", "/api/v1/products", { json: { name, price: 10, stock } }), (reply) => {
    expect(reply.status).toBe(201)
    return reply.body.product.id as number
  })

const read = (app: Client, id: number) =>
  Effect.map(app.get(`/api/v1/products/${id}`), (reply) => {
    expect(reply.status).toBe(200)
    return { stock: reply.body.product.stock as number, cache: reply.headers.get("x-cache") }
  })

const loadsById = (app: Client) =>
  Effect.map(app.get("/metrics"), (reply) => {
    const family = parsePrometheus(reply.text).find((family) => family.name === "db_queries_total")
    const count = (query: string) =>
      Number(family?.metrics.find((m) => m.labels?.query === query && m.labels?.outcome === "ok")?.value ?? 0)
    return count("findById") + count("findByIds")
  })

describe("on a Redis Cluster of three masters", () => {
  it.scopedLive("reads and writes keep the contract, with keys tagged and spread over the masters", () =>
    Effect.gen(function* () {
      const { cluster, instance } = yield* onCluster
      const app = yield* instance
      const ids = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => create(app, `P${i}`, i)
      )
      for (const id of ids) expect((yield* read(app, id)).cache).toBe("MISS")
      for (const id of ids) expect(yield* read(app, id)).toEqual({ stock: ids.indexOf(id), cache: "HIT" })
      const page = yield* app.get("/api/v1/products?offset=0&limit=20")
      expect((yield* app.get("/api/v1/products?offset=0&limit=20")).headers.get("x-cache")).toBe("HIT")
      expect(page.body.total).toBe(12)

      // The contract's tagged names, on the master serving their slot; more than one master holds products.
      const owners = new Set<number>()
      for (const id of ids) {
        const owner = yield* cluster.masterOf(`product:{id:${id}}`)
        owners.add(owner)
        expect(yield* cluster.command(owner, "EXISTS", `product:{id:${id}}`)).toBe(1)
      }
      expect(owners.size).toBeGreaterThanOrEqual(2)
      const listOwner = yield* cluster.masterOf("product:{list}:0:20")
      expect(yield* cluster.command(listOwner, "EXISTS", "product:{list}:0:20")).toBe(1)

      // A write invalidates its product and every page, wherever they live.
      const updated = yield* app.request("PUT", `/api/v1/products/${ids[3]}`, { json: { stock: 333 } })
      expect(updated.status).toBe(200)
      expect(yield* read(app, ids[3]!)).toEqual({ stock: 333, cache: "MISS" })
      const after = yield* app.get("/api/v1/products?offset=0&limit=20")
      expect(after.headers.get("x-cache")).toBe("MISS")
      expect(after.body.products.find((one: { id: number }) => one.id === ids[3]).stock).toBe(333)
      const removed = yield* app.request("DELETE", `/api/v1/products/${ids[5]}`)
      expect(removed.status).toBe(200)
      expect((yield* app.get(`/api/v1/products/${ids[5]}`)).status).toBe(404)
    })
  )

  // Reads and writes that arrive together make one script per hash slot in one turn, for keys on every master: each
  // must reach its own master. Counted by the service itself: no cache operation failed, none was left pending.
  it.scopedLive("reads and writes that arrive together, over every master, all reach the cache", () =>
    Effect.gen(function* () {
      const { cluster, instance } = yield* onCluster
      const app = yield* instance
      const ids = yield* Effect.forEach(
        Array.from({ length: 24 }, (_, i) => i),
        (i) => create(app, `T${i}`, i)
      )
      const owners = new Set(yield* Effect.forEach(ids, (id) => cluster.masterOf(`product:{id:${id}}`)))
      expect(owners.size).toBe(3)
      yield* app.request("POST", "/api/v1/cache/stats/reset")
      const together = <A, E>(each: (id: number, at: number) => Effect.Effect<A, E>) =>
        Effect.all(
          ids.map((id, at) => each(id, at)),
          { concurrency: "unbounded" }
        )
      expect(yield* together((id) => Effect.map(read(app, id), (one) => one.cache))).toEqual(ids.map(() => "MISS"))
      const updated = yield* together((id, at) =>
        app.request("PUT", `/api/v1/products/${id}`, { json: { stock: 1000 + at } })
      )
      expect(updated.map((reply) => reply.status)).toEqual(ids.map(() => 200))
      expect(yield* together((id) => read(app, id))).toEqual(ids.map((_, at) => ({ stock: 1000 + at, cache: "MISS" })))
      expect(yield* together((id) => Effect.map(read(app, id), (one) => one.cache))).toEqual(ids.map(() => "HIT"))
      const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
      expect({ errors: stats.errors, hits: stats.hits, misses: stats.misses }).toEqual({
        errors: 0,
        hits: ids.length,
        misses: 2 * ids.length
      })
    })
  )

  it.scopedLive("a storm of 100 reads of a cold key loads it once", () =>
    Effect.gen(function* () {
      const { instance } = yield* onCluster
      const app = yield* instance
      const id = yield* create(app, "Cold")
      const before = yield* loadsById(app)
      const reads = yield* Effect.all(
        Array.from({ length: 100 }, () => read(app, id)),
        { concurrency: "unbounded" }
      )
      for (const one of reads) expect(one.stock).toBe(1)
      expect((yield* loadsById(app)) - before).toBe(1)
    })
  )

  it.scopedLive("a killed master's keys are answered from the database in bounded time; the others keep caching", () =>
    Effect.gen(function* () {
      const { cluster, instance } = yield* onCluster
      const app = yield* instance
      const ids = yield* Effect.forEach(
        Array.from({ length: 12 }, (_, i) => i),
        (i) => create(app, `K${i}`, i)
      )
      for (const id of ids) yield* read(app, id)
      const owners = yield* Effect.forEach(ids, (id) => cluster.masterOf(`product:{id:${id}}`))
      const lost = owners[0]!
      const onLost = ids.filter((_, i) => owners[i] === lost)
      const onOthers = ids.filter((_, i) => owners[i] !== lost)
      expect(onOthers.length).toBeGreaterThan(0)

      yield* cluster.kill(lost)
      for (const id of onLost) {
        const { millis, reply } = yield* timed(read(app, id))
        expect(reply.stock).toBe(ids.indexOf(id))
        expect(millis).toBeLessThan(replyBoundMillis(cacheTimeout, 1))
      }
      for (const id of onOthers) expect(yield* read(app, id)).toEqual({ stock: ids.indexOf(id), cache: "HIT" })
      const health = yield* app.get("/health")
      expect(health.body).toMatchObject({ status: "degraded", checks: { cache: "down" }, cache_topology: "cluster" })
      expect(health.body.cache_masters).toEqual({ total: 3, answering: 2 })

      // Back (empty, as a restarted cache node without persistence), its keys are cached again by themselves.
      yield* cluster.start(lost)
      const cachedAgain = Effect.map(read(app, onLost[0]!), (one) => one.cache === "HIT")
      expect(yield* eventually(cachedAgain, 20_000)).toBe(true)
    })
  )
})
