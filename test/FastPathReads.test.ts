import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import { Api } from "../src/Api.js"
import { Cache } from "../src/Cache.js"
import * as Databases from "./support/Databases.js"
import { products, client, fresh } from "./support/HttpClient.js"
import type { Reply } from "./support/TestApp.js"
import { App, memoryApp } from "./support/TestApp.js"

// The fast path and the HttpApi route answer a read alike (on both databases, vitest.config.ts).

describe("the fast path for GET by id and of a list page", () => {
  // The fast path answers these two reads without the HttpApi app: a middleware added to them (or to their group, or
  // to the whole API) would run on other spellings only. This fails first, so whoever adds one teaches the fast path.
  it("the reads it answers carry no HttpApi middleware", () => {
    const group = Api.groups.products
    expect(Api.middlewares.size).toBe(0)
    expect(group.middlewares.size).toBe(0)
    expect(group.endpoints.get.middlewares.size).toBe(0)
    expect(group.endpoints.list.middlewares.size).toBe(0)
  })

  // Canonical spellings are answered by the fast path (FastPath.ts), other spellings of the same read by the HttpApi
  // route. In the same cache state the two must send the same answer: status, headers and body, byte for byte but
  // for the time measured.
  const timeless = (text: string) => text.replace(/"duration_ms":[0-9.e+-]+/, '"duration_ms":0')
  const comparedHeaders = ["content-type", "x-cache", "x-request-id", "x-content-type-options", "location"]

  const expectSameAnswer = (fast: Reply, routed: Reply, label: string) => {
    expect(fast.status, label).toBe(routed.status)
    for (const name of comparedHeaders)
      expect(fast.headers.get(name), `${label}: ${name}`).toBe(routed.headers.get(name))
    const names = (reply: Reply) => [...reply.headers.keys()].sort()
    expect(names(fast), label).toEqual(names(routed))
    for (const reply of [fast, routed]) {
      expect(Number(reply.headers.get("content-length")), label).toBe(Buffer.byteLength(reply.text))
    }
    expect(timeless(fast.text), label).toBe(timeless(routed.text))
  }

  /** The same read both ways, with the caller's request id; `between` restores the cache state in between. */
  const bothWays = (fastPath: string, routedPath: string, between: Effect.Effect<void, never, Cache> = Effect.void) =>
    Effect.gen(function* () {
      const app = yield* App
      const headers = { "x-request-id": "compare-1" }
      const fast = yield* app.request("GET", fastPath, { headers })
      yield* between
      const routed = yield* app.request("GET", routedPath, { headers })
      expectSameAnswer(fast, routed, `${fastPath} vs ${routedPath}`)
      return fast
    })

  const evict = (keys: ReadonlyArray<string>, guards: ReadonlyArray<string>) =>
    Effect.flatMap(Cache, (cache) => Effect.orDie(cache.invalidate(keys, guards)))

  it.live("by id: a hit, a miss and a 404 are the same answers both ways", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const created = yield* api.create({ name: "Same", price: 3 })
        const path = `${products}/${created.id}`
        const key = `product:id:${created.id}`
        const evictProduct = evict([key, `product:absent:id:${created.id}`], [`product:guard:id:${created.id}`])
        yield* evictProduct
        const miss = yield* bothWays(path, `${products}/0${created.id}`, evictProduct)
        expect(miss.headers.get("x-cache")).toBe("MISS")
        const hit = yield* bothWays(path, `${products}/0${created.id}`)
        expect(hit.headers.get("x-cache")).toBe("HIT")
        yield* bothWays(`${products}/${created.id + 1}`, `${products}/0${created.id + 1}`)
        expect((yield* api.get(`${products}/${created.id + 1}`)).status).toBe(404)
        // HEAD is answered wherever GET is: GET's status and content type, no body.
        for (const [target, status] of [
          [path, 200],
          [`${products}/${created.id + 1}`, 404],
          [`${products}/0${created.id}`, 200]
        ] as const) {
          const head = yield* api.request("HEAD", target)
          expect([head.status, head.text], target).toEqual([status, ""])
          expect(head.headers.get("content-type"), target).toBe("application/json")
        }
      })
    )
  )

  it.live("a list page: hits and misses, with and without a query, are the same answers both ways", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        for (const name of ["One", "Two", "Three"]) yield* api.create({ name, price: 3 })
        const pairs: ReadonlyArray<readonly [string, string, string]> = [
          [`${products}?offset=1&limit=2`, `${products}?limit=2&offset=1`, "product:list:1:2"],
          [`${products}?offset=0&limit=500`, `${products}?offset=00&limit=500`, "product:list:0:100"],
          [products, `${products}?`, "product:list:0:20"]
        ]
        for (const [fast, routed, key] of pairs) {
          const evictPage = evict([key], ["product:guard:list"])
          yield* evictPage
          expect((yield* bothWays(fast, routed, evictPage)).headers.get("x-cache")).toBe("MISS")
          expect((yield* bothWays(fast, routed)).headers.get("x-cache")).toBe("HIT")
        }
        const page = yield* api.get(`${products}?offset=0&limit=500`)
        expect(page.body.limit).toBe(100)
        expect(page.body.products.map((p: { name: string }) => p.name)).toEqual(["One", "Two", "Three"])
        expect((yield* api.get(`${products}?offset=0&limit=0`)).status).toBe(400)
      })
    )
  )

  it.live("a request id is made when the caller's is missing or not sane, on both paths", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const path of [`${products}/1`, `${products}/01`, products, `${products}?`]) {
          const plain = yield* app.get(path)
          expect(plain.headers.get("x-request-id"), path).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/)
          const insane = yield* app.request("GET", path, { headers: { "x-request-id": "x".repeat(129) } })
          expect(insane.headers.get("x-request-id"), path).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/)
        }
      })
    )
  )

  it.scopedLive("with CACHE_GRACE a database failure answers the same STALE copy both ways, as documented", () =>
    Effect.gen(function* () {
      const database = yield* Databases.make
      yield* Effect.gen(function* () {
        const api = yield* client
        const kept = yield* api.create({ name: "Kept", price: 1 })
        yield* api.create({ name: "Other", price: 1 })
        for (const path of [`${products}/${kept.id}`, `${products}?offset=0&limit=5`]) yield* api.get(path)
        // The entries expire (CACHE_TTL=300ms); their copies stay for the grace period.
        yield* Effect.sleep("1200 millis")
        const byId = yield* api.get(`${products}/${kept.id}`)
        expect(byId.status).toBe(200)
        expect(byId.body).toMatchObject({ product: { id: kept.id, name: "Kept" }, from_cache: false })
        // Caches again: the database answers, so no copy is served. Now the database goes away.
        yield* Effect.sleep("400 millis")
        yield* database.dropProductsTable
        const stale = yield* bothWays(`${products}/${kept.id}`, `${products}/0${kept.id}`)
        expect(stale.status).toBe(200)
        expect(stale.headers.get("x-cache")).toBe("STALE")
        expect(Number(stale.headers.get("age"))).toBeGreaterThanOrEqual(0)
        expect(stale.body).toMatchObject({ product: { id: kept.id, name: "Kept" }, from_cache: true })
        const page = yield* bothWays(`${products}?offset=0&limit=5`, `${products}?limit=5&offset=0`)
        expect(page.headers.get("x-cache")).toBe("STALE")
        expect(Number(page.headers.get("age"))).toBeGreaterThanOrEqual(1)
        expect(page.body).toMatchObject({ total: 2, offset: 0, limit: 5, from_cache: true })
        // The OpenAPI document describes the STALE answer and its Age header (the checked client validates it).
        expect((yield* api.get(`${products}/${kept.id}`)).headers.get("x-cache")).toBe("STALE")
        const stats = (yield* api.get("/api/v1/cache/stats")).body.cache_stats
        expect(stats.stale).toBe(5)
      }).pipe(Effect.provide(memoryApp({ CACHE_TTL: "300ms", CACHE_GRACE: "1m" }, database)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )

  it.scopedLive("a database failure is the same 503 both ways", () =>
    Effect.gen(function* () {
      const database = yield* Databases.make
      yield* Effect.gen(function* () {
        const api = yield* client
        const existing = yield* api.create({ name: "Existing", price: 1 })
        yield* database.dropProductsTable
        const byId = yield* bothWays(`${products}/${existing.id}`, `${products}/0${existing.id}`)
        expect(byId.status).toBe(503)
        const page = yield* bothWays(`${products}?offset=0&limit=5`, `${products}?limit=5&offset=0`)
        expect(page.status).toBe(503)
      }).pipe(Effect.provide(memoryApp(undefined, database)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )
})
