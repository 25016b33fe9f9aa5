import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import * as Path from "node:path"
import { Cache } from "../../src/Cache.js"
import { RedisLive } from "../../src/CacheLive.js"
import { ProductRepo } from "../../src/ProductRepo.js"
import { makeSwitchableCache } from "../support/Fakes.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App } from "../support/TestApp.js"
import type { TestApp as Client } from "../support/TestApp.js"

// Two service instances on one Redis and one SQLite file: what one writes, the other must never contradict.

// Database reads that take a few milliseconds, as they do under load: that is the window in which a naive
// cache-aside puts a row back after a write removed it.
const slowReads = (repo: ProductRepo): ProductRepo => {
  const pause = Effect.suspend(() => Effect.sleep(Math.random() * 20))
  return ProductRepo.make({
    ...repo,
    findById: (id) => Effect.tap(repo.findById(id), () => pause),
    page: (offset, limit) => Effect.tap(repo.page(offset, limit), () => pause)
  })
}

const twoInstancesWith = (extraEnv: Record<string, string>) =>
  Effect.gen(function* () {
    const server = yield* RedisServer.make()
    const dir = yield* TestApp.tempDir()
    const env = { REDIS_URL: server.url, DB_PATH: Path.join(dir, "shared.db"), ...extraEnv }
    // Instance a's link to Redis can be cut on its own, as in a partition that b does not see.
    let cutA: (down: boolean) => Effect.Effect<void> = () => Effect.void
    const cacheA = Layer.effect(
      Cache,
      Effect.map(Cache, (redis) => {
        const switchable = makeSwitchableCache(redis)
        cutA = switchable.setDown
        return switchable.cache
      })
    ).pipe(Layer.provide(RedisLive))
    // Built in the test's scope, so both stay up for the whole test; one after the other, as the migration runs once.
    const instance = (cache: Layer.Layer<Cache, unknown>) =>
      Effect.map(Layer.build(TestApp.layer({ cache, env, repo: slowReads })), Context.get(App))
    const a = yield* instance(cacheA)
    const b = yield* instance(RedisLive)
    return { server, a, b, partitionA: (down: boolean) => cutA(down) }
  })

const twoInstances = twoInstancesWith({})

const stats = (app: Client) => Effect.map(app.get("/api/v1/cache/stats"), (reply) => reply.body.cache_stats)

const sleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

describe("two instances", () => {
  it.scopedLive("no read returns a value older than the last acknowledged write, by id or in a list page", () =>
    Effect.gen(function* () {
      const { a, b } = yield* twoInstances
      const created = yield* a.request("POST", "/api/v1/products", { json: { name: "Counter", price: 1 } })
      const id = created.body.product.id
      let acked = 1
      let done = false
      const violations: Array<string> = []

      // One writer, alternating instances: price n+1 is written only after price n was acknowledged.
      const writer = Effect.gen(function* () {
        for (let price = 2; price <= 100; price++) {
          const reply = yield* (price % 2 === 0 ? a : b).request("PUT", `/api/v1/products/${id}`, { json: { price } })
          expect(reply.status).toBe(200)
          acked = price
          // Let readers see the state this write left before the next write changes it.
          yield* sleep(Math.random() * 20)
        }
        done = true
      })

      const reader = (app: Client, name: string, list: boolean) =>
        Effect.gen(function* () {
          let reads = 0
          while (!done) {
            const floor = acked
            const reply = yield* app.get(list ? "/api/v1/products?limit=5" : `/api/v1/products/${id}`)
            const price = list ? reply.body.products[0].price : reply.body.product.price
            if (price < floor) violations.push(`${name}: read ${price} after ${floor} was acknowledged`)
            reads++
          }
          return reads
        })

      const [, ...reads] = yield* Effect.all(
        [
          writer,
          reader(a, "a/id", false),
          reader(b, "b/id", false),
          reader(a, "a/list", true),
          reader(b, "b/list", true),
          reader(b, "b/id#2", false)
        ],
        { concurrency: "unbounded" }
      )
      // Without the guard check in the fill script this finds dozens of stale reads per run (tried: 80).
      expect(violations).toEqual([])
      expect(reads.every((count) => (count as number) > 20)).toBe(true)
      // The cache was really in play: some reads were hits.
      const [sa, sb] = yield* Effect.all([stats(a), stats(b)])
      expect(sa.hits + sb.hits).toBeGreaterThan(0)
    })
  )

  it.scopedLive("a write whose invalidation one instance could not deliver is honoured by the other at once", () =>
    Effect.gen(function* () {
      const { a, b, partitionA } = yield* twoInstances
      const created = yield* a.request("POST", "/api/v1/products", { json: { name: "P", price: 1 } })
      const path = `/api/v1/products/${created.body.product.id}`
      yield* b.get(path)
      yield* b.get("/api/v1/products")
      expect((yield* b.get(path)).body.from_cache).toBe(true)

      yield* partitionA(true) // only a loses Redis; b's connection is fine and Redis still holds price 1
      const updated = yield* a.request("PUT", path, { json: { price: 2 } })
      expect(updated.status).toBe(200)

      const read = yield* b.get(path)
      expect(read.body.product.price).toBe(2)
      expect((yield* b.get("/api/v1/products")).body.products[0].price).toBe(2)
      // b applied the invalidation a could not, so caching goes on normally there.
      expect((yield* b.get(path)).body.from_cache).toBe(true)
      yield* partitionA(false)
      expect((yield* a.get(path)).body).toMatchObject({ product: { price: 2 }, from_cache: true })
    })
  )

  it.scopedLive(
    "Redis paused (CLIENT PAUSE): requests answer from the database within the bound; caching resumes",
    () =>
      Effect.gen(function* () {
        const { a, b, server } = yield* twoInstances
        const created = yield* a.request("POST", "/api/v1/products", { json: { name: "P", price: 1 } })
        const path = `/api/v1/products/${created.body.product.id}`
        yield* a.get(path)
        yield* server.pause(3000)
        const started = Date.now()
        const updated = yield* b.request("PUT", path, { json: { price: 2 } })
        const read = yield* a.get(path)
        const elapsed = Date.now() - started
        expect(updated.status).toBe(200)
        expect(read.body.product.price).toBe(2)
        // Well before the pause ends: nobody waited for Redis to come back.
        expect(elapsed).toBeLessThan(2500)
        yield* sleep(3100)
        let hit = false
        for (let attempt = 0; attempt < 40 && !hit; attempt++) {
          const again = yield* a.get(path)
          expect(again.body.product.price).toBe(2)
          hit = again.body.from_cache === true
          if (!hit) yield* sleep(100)
        }
        expect(hit).toBe(true)
      })
  )

  it.scopedLive("concurrent cold reads on both instances: one fill in all", () =>
    Effect.gen(function* () {
      // 200 requests at once can starve one event loop past the default command timeout on a busy machine; this
      // test is about stampedes, not timeouts.
      const { a, b } = yield* twoInstancesWith({ CACHE_TIMEOUT: "3s" })
      const created = yield* a.request("POST", "/api/v1/products", { json: { name: "Hot", price: 1 } })
      const path = `/api/v1/products/${created.body.product.id}`
      const reads = yield* Effect.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).get(path)),
        { concurrency: "unbounded" }
      )
      expect(reads.every((read) => read.status === 200 && read.body.product.name === "Hot")).toBe(true)
      const [sa, sb] = yield* Effect.all([stats(a), stats(b)])
      expect(sa.sets + sb.sets).toBe(1)
      expect(sa.errors + sb.errors).toBe(0)
    })
  )
})
