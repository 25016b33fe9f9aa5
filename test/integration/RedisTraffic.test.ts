import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger } from "effect"
import * as Net from "node:net"
import { RedisLive } from "../../src/Services.js"
import { create, withApp } from "../support/RedisApp.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App, eventually } from "../support/TestApp.js"

// What the service says and sends to a real Redis: one read for the reads that arrive together, never KEYS, one log
// line per transition, and invalidations lost in an outage.

interface RawReply {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body: any
}

/** A pipelined request: a GET of a path, or a method with a JSON body. */
type Pipelined = string | { readonly method: string; readonly path: string; readonly json: unknown }

const requestText = (host: string, request: Pipelined) => {
  if (typeof request === "string") return `GET ${request} HTTP/1.1\r\nHost: ${host}\r\n\r\n`
  const body = JSON.stringify(request.json)
  const head = `${request.method} ${request.path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json`
  return `${head}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

/** Sends every request in one write on one connection (HTTP/1.1 pipelining) and reads the answers in order. */
const pipelined = (url: string, paths: ReadonlyArray<Pipelined>) =>
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
    socket.write(paths.map((request) => requestText(hostname, request)).join(""))
    return Effect.sync(() => socket.destroy())
  })

describe("what the service says and sends to Redis", () => {
  // Requests pipelined on one connection are parsed in one turn, so they reach the fast path together: the batch
  // looks them all up with one script, loads its misses (here a product and an unknown id) with one query and
  // fills them with one script; each request still gets the answer it would get alone.
  it.scopedLive("reads by id that arrive together share one lookup, one load and one fill, each its own answer", () =>
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
        // Database loads by id so far, single and batched, from /metrics.
        const queries = Effect.map(app.get("/metrics"), (reply) => {
          const count = (query: string) =>
            Number(
              new RegExp(`^db_queries_total\\{[^}]*query="${query}",outcome="ok"\\} (\\d+)`, "m").exec(
                reply.text
              )?.[1] ?? 0
            )
          return { findById: count("findById"), findByIds: count("findByIds") }
        })
        const before = yield* scripts
        const queriesBefore = yield* queries
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
        // One lookup for the batch and one fill for its two misses. Were every read run alone, the lookups would
        // have shared one script and each miss filled with its own: 3; handed over after a peek, as before: 4.
        expect((yield* scripts) - before).toBe(2)
        // The two misses loaded with one query for both ids.
        const after = yield* queries
        expect({
          findById: after.findById - queriesBefore.findById,
          findByIds: after.findByIds - queriesBefore.findByIds
        }).toEqual({
          findById: 0,
          findByIds: 1
        })
      })
    )
  )

  // A write waits for Redis once: its product's keys and every list page are removed by one script, not one after
  // the other.
  it.scopedLive("a write invalidates its product and the list pages with one script: one round trip", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const product = yield* create("Lamp", 10)
        const path = `/api/v1/products/${product.id}`
        // The first write loads the script into Redis (EVALSHA refused, then EVAL): not what is counted.
        expect((yield* app.request("PUT", path, { json: { price: 11 } })).status).toBe(200)
        yield* app.get(path)
        yield* app.get("/api/v1/products")
        const calls = Effect.map(server.command("INFO", "commandstats"), (info) => {
          const count = (command: string) =>
            Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))?.[1] ?? 0)
          return { scripts: count("evalsha") + count("eval"), wait: count("wait") }
        })
        const before = yield* calls
        expect((yield* app.request("PUT", path, { json: { price: 12 } })).status).toBe(200)
        const after = yield* calls
        expect({ scripts: after.scripts - before.scripts, wait: after.wait - before.wait }).toEqual({
          scripts: 1,
          wait: 0
        })
        // That one script removed both: the next reads miss and show the write.
        const read = yield* app.get(path)
        expect({ fromCache: read.body.from_cache, price: read.body.product.price }).toEqual({
          fromCache: false,
          price: 12
        })
        const page = yield* app.get("/api/v1/products")
        expect(page.body.from_cache).toBe(false)
        expect(page.body.products[0].price).toBe(12)
      })
    )
  )

  // Writes committed in one turn send their removals together: one script for all their products and the pages,
  // and each write answers only after it, so a read after any answer finds none of what they replaced.
  it.scopedLive("writes that arrive together remove their products and the pages with one script", () =>
    withApp((server) =>
      Effect.gen(function* () {
        const app = yield* App
        const products: Array<{ id: number }> = []
        for (let n = 0; n < 8; n++) products.push(yield* create(`Item ${n}`, n + 1))
        // A first write loads the script into Redis (EVALSHA refused, then EVAL): not what is counted.
        expect((yield* app.request("PUT", `/api/v1/products/${products[0]!.id}`, { json: { stock: 1 } })).status).toBe(
          200
        )
        for (const product of products) yield* app.get(`/api/v1/products/${product.id}`)
        yield* app.get("/api/v1/products")
        const scripts = Effect.map(server.command("INFO", "commandstats"), (info) =>
          ["evalsha", "eval"].reduce(
            (sum, command) => sum + Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(String(info))?.[1] ?? 0),
            0
          )
        )
        const before = yield* scripts
        const replies = yield* pipelined(
          app.url,
          products.map((product, at) => ({
            method: "PUT",
            path: `/api/v1/products/${product.id}`,
            json: { stock: 500 + at }
          }))
        )
        expect(replies.map((reply) => [reply.status, reply.body.product.stock])).toEqual(
          products.map((_, at) => [200, 500 + at])
        )
        expect((yield* scripts) - before).toBe(1)
        for (const [at, product] of products.entries()) {
          const read = yield* app.get(`/api/v1/products/${product.id}`)
          expect({ fromCache: read.body.from_cache, stock: read.body.product.stock }).toEqual({
            fromCache: false,
            stock: 500 + at
          })
        }
        const page = yield* app.get("/api/v1/products")
        expect(page.body.from_cache).toBe(false)
        expect(page.body.products.map((product: { stock: number }) => product.stock)).toEqual(
          products.map((_, at) => 500 + at)
        )
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
