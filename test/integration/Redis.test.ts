import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import * as Net from "node:net"
import parsePrometheus from "parse-prometheus-text-format"
import { RedisLive } from "../../src/CacheLive.js"
import type { ProductId } from "../../src/Domain/Product.js"
import { ProductService } from "../../src/ProductService.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App, eventually, replyBoundMillis, timed } from "../support/TestApp.js"

// The real app on a real Redis (our own redis-server, never the machine's) and a real SQLite file.

const withApp = <A, E>(
  test: (server: RedisServer.RedisServer) => Effect.Effect<A, E, App | ProductService>,
  env: Record<string, string> = {}
) =>
  Effect.gen(function* () {
    const server = yield* RedisServer.make()
    return yield* test(server).pipe(
      Effect.provide(TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url, ...env } }))
    )
  })

// Above the reply margin, so that a request that waits on Redis once more than it should cannot pass.
const cacheTimeout = 800

const keys = (server: RedisServer.RedisServer, pattern: string) =>
  Effect.map(server.command("KEYS", pattern), (found) => [...(found as Array<string>)].sort())

const create = (name: string, price = 10) =>
  Effect.flatMap(App, (app) =>
    Effect.map(app.request("POST", "/api/v1/products", { json: { name, price } }), (reply) => {
      expect(reply.status).toBe(201)
      return reply.body.product as { id: number; name: string; price: number }
    })
  )

interface RawReply {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: any
}

/** Sends every GET in one write on one connection (HTTP/1.1 pipelining) and reads the answers in order. */
const pipelined = (url: string, paths: ReadonlyArray<string>) =>
  Effect.async<Array<RawReply>>((resume) => {
    const { hostname, port } = new URL(url)
    const socket = Net.connect(Number(port), hostname)
    let buffered = Buffer.alloc(0)
    const replies: Array<RawReply> = []
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const end = buffered.indexOf("\r\n\r\n")
        if (end === -1) break
        const [statusLine, ...lines] = buffered.subarray(0, end).toString("latin1").split("\r\n")
        const headers = Object.fromEntries(
          lines.map((line) => [
            line.slice(0, line.indexOf(":")).toLowerCase(),
            line.slice(line.indexOf(":") + 1).trim()
          ])
        )
        const length = Number(headers["content-length"])
        if (buffered.length < end + 4 + length) break
        const body = JSON.parse(buffered.subarray(end + 4, end + 4 + length).toString("utf8"))
        replies.push({ status: Number(statusLine!.split(" ")[1]), headers, body })
        buffered = buffered.subarray(end + 4 + length)
      }
      if (replies.length === paths.length) {
        socket.destroy()
        resume(Effect.succeed(replies))
      }
    })
    socket.on("error", (error) => resume(Effect.die(error)))
    socket.write(paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: ${hostname}\r\n\r\n`).join(""))
    return Effect.sync(() => socket.destroy())
  })
/** Database loads by id so far (single-row and batched queries), from /metrics. */
const loadQueries = Effect.flatMap(App, (app) =>
  Effect.map(app.get("/metrics"), (reply) => {
    const family = parsePrometheus(reply.text).find((family) => family.name === "db_queries_total")
    const count = (query: string) =>
      Number(
        family?.metrics.find((metric) => metric.labels?.query === query && metric.labels?.outcome === "ok")?.value ?? 0
      )
    return { findById: count("findById"), findByIds: count("findByIds") }
  })
)

describe("with a real Redis", () => {
  it.scopedLive("a burst of misses for distinct ids loads in one IN query on SQLite, through the real Redis", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const products = yield* ProductService
        const created = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => create(`P${i}`, i + 1)
        )
        yield* server.command("FLUSHDB")
        const before = yield* loadQueries
        // Issued together, as requests arriving in one turn of the event loop are: their lookups go to Redis in one
        // pipeline, the misses come back together, and their loads wait for the end of that turn.
        const reads = yield* Effect.all(
          created.map((product) => products.getById(product.id as ProductId)),
          { concurrency: "unbounded" }
        )
        const after = yield* loadQueries
        for (const [i, read] of reads.entries()) {
          expect(read.fromCache).toBe(false)
          expect(JSON.parse(read.json)).toEqual(created[i])
        }
        expect({ findById: after.findById - before.findById, findByIds: after.findByIds - before.findByIds }).toEqual({
          findById: 0,
          findByIds: 1
        })
      })
    )
  )

  it.scopedLive("reads fill product:id:<id> and product:list:<offset>:<limit> with CACHE_TTL", () =>
    withApp(
      (server) =>
        Effect.gen(function* () {
          const app = yield* App
          const product = yield* create("Laptop")
          yield* app.get(`/api/v1/products/${product.id}`)
          yield* app.get("/api/v1/products?offset=0&limit=500")
          expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${product.id}`])
          expect(yield* keys(server, "product:list:*")).toEqual(["product:list:0:100"])
          const cached = JSON.parse((yield* server.command("GET", `product:id:${product.id}`)) as string)
          expect(cached).toEqual(product)
          const page = JSON.parse((yield* server.command("GET", "product:list:0:100")) as string)
          expect(page).toEqual({ products: [product], total: 1 })
          for (const key of [`product:id:${product.id}`, "product:list:0:100"]) {
            const pttl = Number(yield* server.command("PTTL", key))
            expect(pttl).toBeGreaterThan(80_000)
            expect(pttl).toBeLessThanOrEqual(90_000)
          }
          const hit = yield* app.get(`/api/v1/products/${product.id}`)
          expect(hit.body.from_cache).toBe(true)
          expect(hit.body.product).toEqual(product)
        }),
      { CACHE_TTL: "1m30s" }
    )
  )

  it.scopedLive("CACHE_PREFIX names every key", () =>
    withApp(
      (server) =>
        Effect.gen(function* () {
          const app = yield* App
          const product = yield* create("Laptop")
          yield* app.get(`/api/v1/products/${product.id}`)
          yield* app.get("/api/v1/products")
          expect(yield* keys(server, "shop:id:*")).toEqual([`shop:id:${product.id}`])
          expect(yield* keys(server, "shop:list:*")).toEqual(["shop:list:0:20"])
          expect(yield* keys(server, "product:*")).toEqual([])
        }),
      { CACHE_PREFIX: "shop:" }
    )
  )

  it.scopedLive("writes remove the product's key and every list key from Redis", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const a = yield* create("A")
        const b = yield* create("B")
        const warm = Effect.all([
          app.get(`/api/v1/products/${a.id}`),
          app.get(`/api/v1/products/${b.id}`),
          app.get("/api/v1/products"),
          app.get("/api/v1/products?offset=1&limit=1")
        ])
        yield* warm
        expect((yield* keys(server, "product:list:*")).length).toBe(2)

        yield* app.request("PUT", `/api/v1/products/${a.id}`, { json: { price: 5 } })
        expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${b.id}`])
        expect(yield* keys(server, "product:list:*")).toEqual([])

        yield* warm
        yield* create("C")
        expect(yield* keys(server, "product:list:*")).toEqual([])
        expect((yield* keys(server, "product:id:*")).length).toBe(2)

        yield* warm
        yield* app.request("DELETE", `/api/v1/products/${b.id}`)
        expect(yield* keys(server, "product:id:*")).toEqual([`product:id:${a.id}`])
        expect(yield* keys(server, "product:list:*")).toEqual([])
        const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
        expect(stats.errors).toBe(0)
        expect(stats.deletes).toBe(3 + 2 + 3)
      })
    )
  )

  it.scopedLive(
    "Redis killed mid-test: answers stay correct, errors are counted, health is degraded; it returns by itself",
    () =>
      withApp(
        (server) =>
          Effect.gen(function* () {
            const app = yield* App
            const product = yield* create("Laptop", 100)
            yield* app.get(`/api/v1/products/${product.id}`)
            expect((yield* app.get(`/api/v1/products/${product.id}`)).body.from_cache).toBe(true)
            yield* app.request("POST", "/api/v1/cache/stats/reset")

            yield* server.stop
            const read = yield* timed(app.get(`/api/v1/products/${product.id}`))
            expect(read.reply.status).toBe(200)
            expect(read.reply.body.from_cache).toBe(false)
            expect(read.reply.headers.get("x-cache")).toBe("MISS")
            const update = yield* timed(app.request("PUT", `/api/v1/products/${product.id}`, { json: { price: 50 } }))
            expect(update.reply.body.product.price).toBe(50)
            const reread = yield* timed(app.get(`/api/v1/products/${product.id}`))
            expect(reread.reply.body.product.price).toBe(50)
            const list = yield* timed(app.get("/api/v1/products"))
            expect(list.reply.body.products[0].price).toBe(50)
            // A dead Redis fails at once; this checks no request waited on it more than its commands' timeouts allow.
            for (const [label, { millis }, commands] of [
              ["read", read, 1],
              ["update", update, 2],
              ["read after update", reread, 1],
              ["list", list, 1]
            ] as const) {
              expect(millis, label).toBeLessThan(replyBoundMillis(cacheTimeout, commands))
            }
            const health = yield* app.get("/health")
            expect(health.status).toBe(200)
            expect(health.body.status).toBe("degraded")
            expect(health.body.checks).toEqual({ database: "up", cache: "down" })
            const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
            expect(stats.hits + stats.misses).toBe(0)
            expect(stats.errors).toBeGreaterThanOrEqual(5)

            // Redis comes back empty (no persistence here). The service reconnects on its own and caches again.
            yield* server.start
            expect(yield* eventually(Effect.map(app.get("/health"), (reply) => reply.body.status === "healthy"))).toBe(
              true
            )
            const first = yield* app.get(`/api/v1/products/${product.id}`)
            const second = yield* app.get(`/api/v1/products/${product.id}`)
            expect([first.body.from_cache, second.body.from_cache]).toEqual([false, true])
            expect(second.body.product.price).toBe(50)
          }),
        { CACHE_TIMEOUT: `${cacheTimeout}ms` }
      )
  )

  it.scopedLive(
    "a frozen Redis costs a request at most CACHE_TIMEOUT; after five, the circuit opens and skips it",
    () =>
      withApp(
        (server) =>
          Effect.gen(function* () {
            const app = yield* App
            const product = yield* create("Laptop")
            yield* app.request("POST", "/api/v1/cache/stats/reset")
            const skipped = Effect.map(app.get("/metrics"), (reply) =>
              Number(/cache_operations_total\{operation="lookup",outcome="skipped"\} (\d+)/.exec(reply.text)?.[1] ?? 0)
            )
            const skippedBefore = yield* skipped
            yield* server.freeze
            for (let i = 0; i < 30; i++) {
              const { millis, reply } = yield* timed(app.get(`/api/v1/products/${product.id}`))
              expect(reply.status).toBe(200)
              expect(reply.body.product.name).toBe("Laptop")
              expect(millis, `read ${i + 1}`).toBeLessThan(replyBoundMillis(cacheTimeout, 1))
            }
            const health = yield* timed(app.get("/health"))
            yield* server.thaw
            expect(health.reply.body.status).toBe("degraded")
            expect(health.millis).toBeLessThan(replyBoundMillis(cacheTimeout, 1))
            // Without the breaker every read would wait the full timeout; with it, Redis is skipped after the first five.
            expect((yield* skipped) - skippedBefore).toBeGreaterThanOrEqual(20)
            const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
            expect(stats.errors).toBe(30)
            expect(stats.hits + stats.misses).toBe(0)
          }),
        { CACHE_TIMEOUT: `${cacheTimeout}ms` }
      )
  )
})

describe("what the service says and sends to Redis", () => {
  // Requests pipelined on one connection are parsed in one turn, so they reach the lean path together: the batch
  // answers its hits with one MGET, and each of the others (here a miss and an unknown id) as if it came alone.
  it.scopedLive("reads by id that arrive together share one cache read, and each gets its own answer", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const products: Array<{ id: number; name: string; price: number }> = []
        for (let n = 0; n < 30; n++) products.push(yield* create(`Item ${n}`, n + 1))
        for (const product of products.slice(1)) yield* app.get(`/api/v1/products/${product.id}`)
        yield* app.request("POST", "/api/v1/cache/stats/reset")
        const scripts = Effect.map(server.command("INFO", "commandstats"), (info) =>
          Number(/cmdstat_evalsha:calls=(\d+)/.exec(String(info))?.[1] ?? 0)
        )
        const before = yield* scripts
        const ids = [...products.map((product) => product.id), 999_999, products[5]!.id]
        const replies = yield* pipelined(
          app.url,
          ids.map((id) => `/api/v1/products/${id}`)
        )
        expect(replies.map((reply) => reply.status)).toEqual([...products.map(() => 200), 404, 200])
        replies.slice(0, 30).forEach((reply, at) => {
          expect(reply.body.product).toEqual(products[at])
          expect(reply.headers["x-cache"]).toBe(at === 0 ? "MISS" : "HIT")
          expect(reply.body.from_cache).toBe(at !== 0)
        })
        expect(replies[30]!.body).toEqual({ error: "not_found", message: "product 999999 not found" })
        const stats = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
        expect({ hits: stats.hits, misses: stats.misses, errors: stats.errors }).toEqual({
          hits: 30,
          misses: 2,
          errors: 0
        })
        // One read for the batch; then for the two it handed over (a turn of their own) one lookup, and a fill each.
        // Were every read run alone, their lookups would have shared one script in the first turn: 3.
        expect((yield* scripts) - before).toBe(4)
      })
    )
  )

  it.scopedLive("no KEYS (nor SCAN) command is ever sent: list pages are invalidated through their index", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const products = [yield* create("A"), yield* create("B"), yield* create("C")]
        for (const round of [1, 2]) {
          for (const product of products) yield* app.get(`/api/v1/products/${product.id}`)
          yield* app.get("/api/v1/products")
          yield* app.get("/api/v1/products?offset=1&limit=2")
          yield* app.request("PUT", `/api/v1/products/${products[0]!.id}`, { json: { price: round } })
        }
        yield* app.request("DELETE", `/api/v1/products/${products[1]!.id}`)
        yield* create("D")
        const stats = String(yield* server.command("INFO", "commandstats"))
        expect(stats).not.toMatch(/cmdstat_keys:/)
        expect(stats).not.toMatch(/cmdstat_scan:/)
        // The writes did invalidate the pages: the next read misses and shows the last write.
        const page = yield* app.get("/api/v1/products")
        expect(page.body.from_cache).toBe(false)
        expect(page.body.products.map((product: { name: string }) => product.name)).toEqual(["A", "C", "D"])
      })
    )
  )

  it.scopedLive("Redis down, then up: one warning and one info line each for the connection and the circuit", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      const lines: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => {
        const text = String(Array.isArray(message) ? message[0] : message)
        if (/^cache (unreachable|connected|circuit)/.test(text)) lines.push(`${logLevel.label} ${text}`)
      })
      yield* Effect.gen(function* () {
        const app = yield* App
        const path = `/api/v1/products/${(yield* create("Laptop")).id}`
        yield* server.stop
        // Reads all through the outage: ioredis retries, the circuit opens, and probes (after 500 ms, then 1 s) fail.
        const until = Date.now() + 1_800
        while (Date.now() < until) {
          expect((yield* app.get(path)).status).toBe(200)
          yield* Effect.sleep("20 millis")
        }
        yield* server.start
        expect(yield* eventually(Effect.map(app.get("/health"), (reply) => reply.body.status === "healthy"))).toBe(true)
        for (let i = 0; i < 5; i++) yield* app.get(path)
      }).pipe(
        Effect.provide(
          TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url } }).pipe(
            Layer.provide(Logger.replace(Logger.defaultLogger, capture))
          )
        )
      )
      const count = (prefix: string) => lines.filter((line) => line.startsWith(prefix)).length
      expect(count("INFO cache connected"), lines.join("\n")).toBe(2) // at start, and once back
      expect(count("WARN cache unreachable"), lines.join("\n")).toBe(1)
      expect(count("WARN cache circuit open"), lines.join("\n")).toBe(1)
      expect(count("INFO cache circuit closed"), lines.join("\n")).toBe(1)
      expect(lines).toHaveLength(5)
    })
  )
})

describe("invalidations lost during an outage, with a real Redis", () => {
  it.scopedLive("an entry that survived the outage (append-only file) is not served after a write it missed", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make({ appendOnly: true })
      yield* Effect.gen(function* () {
        const app = yield* App
        const product = yield* create("Laptop", 100)
        yield* app.get(`/api/v1/products/${product.id}`) // cached at price 100, and persisted
        yield* server.stop
        yield* app.request("PUT", `/api/v1/products/${product.id}`, { json: { price: 1 } })
        yield* server.start // the old entry is back from the append-only file
        expect(yield* server.command("GET", `product:id:${product.id}`)).toContain('"price":100')
        // Every read, while the service reconnects and after, shows the write.
        const healthy = yield* eventually(
          Effect.gen(function* () {
            expect((yield* app.get(`/api/v1/products/${product.id}`)).body.product.price).toBe(1)
            return (yield* app.get("/health")).body.status === "healthy"
          })
        )
        expect(healthy).toBe(true)
        expect((yield* app.get(`/api/v1/products/${product.id}`)).body.product.price).toBe(1)
        expect(yield* server.command("GET", `product:id:${product.id}`)).not.toContain('"price":100')
      }).pipe(Effect.provide(TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url } })))
    })
  )
})
