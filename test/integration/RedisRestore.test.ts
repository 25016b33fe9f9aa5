import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import { RedisLive } from "../../src/Services.js"
import * as Databases from "../support/Databases.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App, eventually } from "../support/TestApp.js"
import type { TestApp as Client } from "../support/TestApp.js"

// A Redis that comes back older than its last acknowledged invalidation (a restart from a snapshot; the same
// mechanism as an AOF that lost its last second, a restored backup or a failover to a replica that lagged) must not
// bring back what a write replaced. Two instances on one Redis and one database (vitest.config.ts runs this file on
// SQLite and on PostgreSQL): the epoch that makes the old entries misses is shared through the database.

const twoInstances = Effect.gen(function* () {
  const server = yield* RedisServer.make()
  const database = yield* Databases.make
  const env = { REDIS_URL: server.url }
  const instance = Effect.map(Layer.build(TestApp.layer({ cache: RedisLive, database, env })), Context.get(App))
  return { server, a: yield* instance, b: yield* instance }
})

const product = (app: Client, id: number) =>
  Effect.map(app.get(`/api/v1/products/${id}`), (reply) => {
    expect(reply.status).toBe(200)
    return { stock: reply.body.product.stock as number, cache: reply.headers.get("x-cache") }
  })

const pageStock = (app: Client, id: number) =>
  Effect.map(app.get("/api/v1/products?offset=0&limit=20"), (reply) => {
    expect(reply.status).toBe(200)
    const found = (reply.body.products as Array<{ id: number; stock: number }>).find((one) => one.id === id)
    return { stock: found?.stock, cache: reply.headers.get("x-cache") }
  })

describe(`a Redis that comes back older, on ${Databases.kind}`, () => {
  it.scopedLive("after a restart from a snapshot taken before acknowledged writes, every read is right", () =>
    Effect.gen(function* () {
      const { a, b, server } = yield* twoInstances
      const created = yield* a.request("POST", "/api/v1/products", { json: { name: "Lamp", price: 10, stock: 1 } })
      const id = created.body.product.id as number
      // Cached on both paths, by both instances, then snapshotted with those entries in it.
      for (const app of [a, b]) {
        yield* product(app, id)
        yield* pageStock(app, id)
      }
      expect((yield* product(b, id)).cache).toBe("HIT")
      expect((yield* pageStock(b, id)).cache).toBe("HIT")
      expect(yield* server.command("SAVE")).toBe("OK")

      // Acknowledged writes through each instance: their invalidations reach this Redis, not the snapshot.
      for (const [app, stock] of [
        [a, 4242424],
        [b, 4242425]
      ] as const) {
        const updated = yield* app.request("PUT", `/api/v1/products/${id}`, { json: { stock } })
        expect(updated.status).toBe(200)
      }
      yield* server.stop
      yield* server.start
      expect(yield* server.command("EXISTS", `product:id:${id}`), "the snapshot holds the replaced entry").toBe(1)

      // Every answer from now on is the last write's, by id and in the page, from either instance, while the
      // instances reconnect and until both serve hits again.
      const rightEverywhere = Effect.gen(function* () {
        let hits = 0
        for (const app of [a, b]) {
          const byId = yield* product(app, id)
          const inPage = yield* pageStock(app, id)
          expect(byId.stock).toBe(4242425)
          expect(inPage.stock).toBe(4242425)
          if (byId.cache === "HIT" && inPage.cache === "HIT") hits++
        }
        return hits === 2
      })
      expect(yield* eventually(rightEverywhere, 15_000), "both instances cache again").toBe(true)
    })
  )

  it.scopedLive("a reconnection to the same Redis keeps the cache: no new epoch, hits again without a miss", () =>
    Effect.gen(function* () {
      const { a, b, server } = yield* twoInstances
      const created = yield* a.request("POST", "/api/v1/products", { json: { name: "Desk", price: 10, stock: 3 } })
      const id = created.body.product.id as number
      yield* product(a, id)
      expect((yield* product(b, id)).cache).toBe("HIT")
      const misses = (app: Client) =>
        Effect.map(app.get("/api/v1/cache/stats"), (reply) => reply.body.cache_stats.misses as number)
      const before = { a: yield* misses(a), b: yield* misses(b) }
      // Every client connection of both instances dropped; Redis itself, and its history, stay. Until an instance has
      // checked the history of its new connection its reads are answered from the database (errors, not misses).
      yield* server.command("CLIENT", "KILL", "TYPE", "normal")
      const hit = (app: Client) => Effect.map(product(app, id), (read) => read.cache === "HIT")
      expect(yield* eventually(hit(a), 15_000)).toBe(true)
      expect(yield* eventually(hit(b), 15_000)).toBe(true)
      expect({ a: yield* misses(a), b: yield* misses(b) }, "the entry filled before is still trusted").toEqual(before)
    })
  )
})
