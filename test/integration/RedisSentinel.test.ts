import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer } from "effect"
import { RedisLive } from "../../src/Services.js"
import * as Databases from "../support/Databases.js"
import * as RedisSentinel from "../support/RedisSentinel.js"
import * as TestApp from "../support/TestApp.js"
import { App, eventually } from "../support/TestApp.js"
import type { TestApp as Client } from "../support/TestApp.js"

// The service behind Redis Sentinels (test/support/RedisSentinel.ts: a master, a replica behind a relay that can lose
// the replication stream, three Sentinels): it follows a failover by itself, and a replica promoted without the
// invalidations its master had acknowledged brings back nothing they removed.

const behindSentinels = Effect.gen(function* () {
  const sentinel = yield* RedisSentinel.make()
  const database = yield* Databases.make
  const env = {
    REDIS_SENTINELS: sentinel.sentinels.map(({ host, port }) => `${host}:${port}`).join(","),
    REDIS_SENTINEL_NAME: sentinel.name
  }
  const app = yield* Effect.map(Layer.build(TestApp.layer({ cache: RedisLive, database, env })), Context.get(App))
  return { sentinel, app, database }
})

const read = (app: Client, id: number) =>
  Effect.map(app.get(`/api/v1/products/${id}`), (reply) => {
    expect(reply.status).toBe(200)
    return { stock: reply.body.product.stock as number, cache: reply.headers.get("x-cache") }
  })

const cached = (app: Client, id: number) => Effect.map(read(app, id), (one) => one.cache === "HIT")

const write = (app: Client, id: number, stock: number) =>
  Effect.map(app.request("PUT", `/api/v1/products/${id}`, { json: { stock } }), (reply) => {
    expect(reply.status).toBe(200)
  })

describe("behind Redis Sentinels", () => {
  it.scopedLive(
    "a SENTINEL FAILOVER under writes and reads: every answer is the last write's, then hits on the new master",
    () =>
      Effect.gen(function* () {
        const { app, sentinel } = yield* behindSentinels
        const created = yield* app.request("POST", "/api/v1/products", { json: { name: "Kettle", price: 5, stock: 0 } })
        const id = created.body.product.id as number
        expect((yield* app.get("/health")).body.cache_topology).toBe("sentinel")
        expect(yield* eventually(cached(app, id), 10_000), "cached once the master's history is checked").toBe(true)

        // Each round writes, then reads twice: no read may answer older than the write that has just answered.
        let acknowledged = 0
        let stop = false
        const rounds = Effect.gen(function* () {
          while (!stop) {
            yield* write(app, id, acknowledged + 1)
            acknowledged++
            for (let i = 0; i < 2; i++) expect((yield* read(app, id)).stock).toBe(acknowledged)
          }
        })
        const loop = yield* Effect.fork(rounds)
        yield* sentinel.failover
        yield* sentinel.awaitMaster((master) => master.port === sentinel.replica.port)
        const hitOnNewMaster = Effect.map(read(app, id), (one) => one.cache === "HIT")
        // The loop keeps going through the switch; once it is stopped the entry settles on the new master.
        const atLeast = acknowledged + 20
        yield* Effect.repeat(Effect.yieldNow(), { until: () => acknowledged >= atLeast || loop.unsafePoll() !== null })
        stop = true
        yield* Fiber.join(loop)
        expect(yield* eventually(hitOnNewMaster, 15_000), "cached again on the promoted replica").toBe(true)
        expect((yield* read(app, id)).stock).toBe(acknowledged)
      }),
    60_000
  )

  it.scopedLive(
    "a replica promoted without an acknowledged write's invalidation brings back nothing it removed",
    () =>
      Effect.gen(function* () {
        const { app, sentinel } = yield* behindSentinels
        const created = yield* app.request("POST", "/api/v1/products", { json: { name: "Chair", price: 5, stock: 1 } })
        const id = created.body.product.id as number
        expect(yield* eventually(cached(app, id), 10_000), "cached once the master's history is checked").toBe(true)
        expect((yield* app.get("/api/v1/products?offset=0&limit=20")).body.total).toBe(1)
        // The replica now holds the entries; from here on it hears nothing of what the master does.
        const replicated = Effect.map(sentinel.replica.command("EXISTS", `product:id:${id}`), (n) => n === 1)
        expect(yield* eventually(replicated, 5_000)).toBe(true)
        yield* sentinel.severReplication
        yield* write(app, id, 4242)

        yield* sentinel.master.stop
        yield* sentinel.awaitMaster((master) => master.port === sentinel.replica.port)
        expect(yield* sentinel.replica.command("EXISTS", `product:id:${id}`), "the promoted replica kept it").toBe(1)
        // Every read from now on, by id and in the page, is the write's, while the service moves to the new master
        // and after it has.
        const settled = Effect.gen(function* () {
          const one = yield* read(app, id)
          expect(one.stock).toBe(4242)
          const page = yield* app.get("/api/v1/products?offset=0&limit=20")
          expect(page.body.products[0].stock).toBe(4242)
          const health = yield* app.get("/health")
          return health.body.checks.cache === "up"
        })
        expect(yield* eventually(settled, 20_000), "the service uses the promoted replica").toBe(true)
        for (let i = 0; i < 5; i++) expect((yield* read(app, id)).stock).toBe(4242)
      }),
    60_000
  )

  it.scopedLive(
    "a write's invalidation no replica confirms stays pending, and its key skips the cache until one does",
    () =>
      Effect.gen(function* () {
        const { app, database, sentinel } = yield* behindSentinels
        const created = yield* app.request("POST", "/api/v1/products", { json: { name: "Shelf", price: 5, stock: 1 } })
        const id = created.body.product.id as number
        expect(yield* eventually(cached(app, id), 10_000), "cached once the master's history is checked").toBe(true)
        const pending = Effect.map(
          database.execute(`SELECT key FROM cache_invalidations WHERE key = 'product:id:${id}'`),
          (rows) => rows.length
        )

        yield* sentinel.severReplication
        yield* write(app, id, 7)
        expect(yield* pending, "recorded: the master has it, no replica confirmed it").toBe(1)
        // The entry is gone from the master, but only the record keeps a promoted replica's copy from being served:
        // while it stands, the key is read from the database.
        for (let i = 0; i < 3; i++) expect(yield* read(app, id)).toEqual({ stock: 7, cache: "MISS" })

        yield* sentinel.restoreReplication
        const cachedAgain = Effect.map(read(app, id), (one) => {
          expect(one.stock).toBe(7)
          return one.cache === "HIT"
        })
        expect(yield* eventually(cachedAgain, 15_000), "applied with a replica's confirmation, then cached").toBe(true)
        expect(yield* pending).toBe(0)
      })
  )
})
