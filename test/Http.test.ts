import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import * as Http from "node:http"
import { Cache } from "../src/Cache.js"
import * as OpenApiCheck from "./support/OpenApiCheck.js"
import type { Reply } from "./support/TestApp.js"
import * as Databases from "./support/Databases.js"
import { App, memoryApp } from "./support/TestApp.js"

// The contract of ../shared/spec/API.md, exercised over HTTP against the real app (in-memory cache, SQLite file or
// PostgreSQL database: vitest.config.ts runs this file on both).
// Every test gets a fresh app, so the database is empty and the cache statistics start at zero.

const products = "/api/v1/products"
const productKeys = ["id", "name", "description", "price", "stock", "category", "created_at", "updated_at"]
const statsKeys = ["hits", "misses", "sets", "deletes", "errors", "hit_rate", "total_gets", "stale"]
const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/

// ---------------------------------------------------------------------------------------------------------------
// Client: every reply is checked for leaked internals (stack traces, SQL, driver names).

const assertNoLeak = (method: string, path: string, reply: Reply) => {
  if (path.startsWith("/docs")) return
  const label = `${method} ${path} leaked internals: ${reply.text.slice(0, 300)}`
  expect(reply.text, label).not.toMatch(/^\s*at /m)
  expect(reply.text, label).not.toMatch(/\bat .*\.(ts|js):\d+/)
  expect(reply.text, label).not.toMatch(
    /\bSELECT\b|\bINSERT\b|\bUPDATE products\b|\bDELETE FROM\b|sqlite|postgres|\brelation\b/i
  )
}

/** A raw node:http request: no header is added on our behalf (no content-type), and the body may be chunked. */
const rawRequest = (
  url: string,
  method: string,
  path: string,
  options: { readonly headers?: Record<string, string>; readonly body?: string; readonly chunks?: Array<Buffer> }
) =>
  Effect.async<Reply>((resume) => {
    let answered = false
    const request = Http.request(url + path, { method, headers: options.headers ?? {} }, (response) => {
      const parts: Array<Buffer> = []
      response.on("data", (part: Buffer) => parts.push(part))
      response.on("end", () => {
        if (answered) return
        answered = true
        const headers = new Headers()
        for (const [name, value] of Object.entries(response.headers)) {
          if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value)
        }
        const text = Buffer.concat(parts).toString("utf8")
        let body: unknown = undefined
        try {
          body = JSON.parse(text)
        } catch {
          // asserted on `text`
        }
        resume(Effect.succeed({ status: response.statusCode ?? 0, headers, text, body }))
      })
    })
    // The server may answer (413) and close before it has read the whole body: write errors after that are expected.
    // A connection that fails before any answer is reported as status 0, so the assertion names the request.
    request.on("error", (error) => {
      if (answered) return
      answered = true
      resume(
        Effect.succeed({ status: 0, headers: new Headers(), text: `<no response: ${error.message}>`, body: undefined })
      )
    })
    if (options.chunks !== undefined) {
      for (const chunk of options.chunks) request.write(chunk)
      request.end()
    } else {
      request.end(options.body)
    }
  })

interface Sent {
  readonly headers?: Record<string, string>
  readonly body?: string
  readonly json?: unknown
}

const client = Effect.gen(function* () {
  const app = yield* App
  const checker = yield* OpenApiCheck.ofApp(app)
  const checked = (method: string, path: string, sent: Sent, reply: Effect.Effect<Reply>) =>
    Effect.tap(reply, (r) =>
      Effect.sync(() => {
        assertNoLeak(method, path, r)
        const json = sent.json === undefined ? undefined : JSON.stringify(sent.json)
        const requestHeaders =
          json === undefined ? (sent.headers ?? {}) : { "content-type": "application/json", ...sent.headers }
        OpenApiCheck.expectDocumented(checker, {
          method,
          path,
          requestHeaders,
          requestBody: json ?? sent.body,
          status: r.status,
          headers: r.headers,
          text: r.text
        })
      })
    )
  const request = (
    method: string,
    path: string,
    options?: { readonly json?: unknown; readonly body?: string; readonly headers?: Record<string, string> }
  ) => checked(method, path, options ?? {}, app.request(method, path, options))
  return {
    request,
    get: (path: string) => request("GET", path),
    post: (path: string, json: unknown) => request("POST", path, { json }),
    put: (path: string, json: unknown) => request("PUT", path, { json }),
    del: (path: string) => request("DELETE", path),
    raw: (method: string, path: string, options: Parameters<typeof rawRequest>[3]) =>
      checked(
        method,
        path,
        options.chunks === undefined ? options : { ...options, body: Buffer.concat(options.chunks).toString("utf8") },
        rawRequest(app.url, method, path, options)
      ),
    /** Creates a product, asserting the 201, and returns it as the API answered it. */
    create: (json: unknown) =>
      Effect.map(request("POST", products, { json }), (reply) => {
        expect(reply.status, reply.text).toBe(201)
        return reply.body.product as Product
      })
  }
})

interface Product {
  readonly id: number
  readonly name: string
  readonly description: string
  readonly price: number
  readonly stock: number
  readonly category: string
  readonly created_at: string
  readonly updated_at: string
}

/** A fresh app for one test: empty database, empty cache, zero statistics. */
const fresh = <A, E>(self: Effect.Effect<A, E, App | Cache>) => Effect.provide(self, memoryApp())

// ---------------------------------------------------------------------------------------------------------------
// Assertions

const expectJson = (reply: Reply) => expect(reply.headers.get("content-type") ?? "").toMatch(/^application\/json\b/)

/** `{"error": code, "message": "..."}` and nothing else; the message names each given field. */
const expectError = (reply: Reply, status: number, code: string, label: string, ...fields: Array<string>) => {
  const context = `${label} -> ${reply.status} ${reply.text}`
  expect(reply.status, context).toBe(status)
  expectJson(reply)
  expect(Object.keys(reply.body ?? {}), context).toEqual(["error", "message"])
  expect(reply.body.error, context).toBe(code)
  expect(typeof reply.body.message, context).toBe("string")
  expect(reply.body.message.length, context).toBeGreaterThan(0)
  for (const field of fields) expect(reply.body.message, context).toMatch(new RegExp(`\\b${field}\\b`))
}

const expectIsoBetween = (value: unknown, from: number, to: number) => {
  expect(value).toMatch(isoUtc)
  const millis = Date.parse(value as string)
  expect(millis).toBeGreaterThanOrEqual(from)
  expect(millis).toBeLessThanOrEqual(to)
}

const expectDuration = (value: unknown) => {
  expect(typeof value).toBe("number")
  expect(Number.isFinite(value)).toBe(true)
  expect(value as number).toBeGreaterThanOrEqual(0)
}

const expectStats = (
  body: any,
  expected: { hits: number; misses: number; sets: number; deletes: number; errors: number }
) => {
  expect(Object.keys(body.cache_stats)).toEqual(statsKeys)
  const totalGets = expected.hits + expected.misses
  expect(body.cache_stats).toEqual({
    ...expected,
    hit_rate: totalGets === 0 ? 0 : expected.hits / totalGets,
    total_gets: totalGets,
    stale: 0
  })
}

// ---------------------------------------------------------------------------------------------------------------

describe("success paths", () => {
  it.live("GET /health answers healthy with the contract's keys", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const reply = yield* api.get("/health")
        const after = Date.now()
        expect(reply.status).toBe(200)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["service", "status", "checks", "timestamp"])
        expect(typeof reply.body.service).toBe("string")
        expect(reply.body.service.length).toBeGreaterThan(0)
        expect(reply.body.status).toBe("healthy")
        expect(reply.body.checks).toEqual({ database: "up", cache: "up" })
        expect(Object.keys(reply.body.checks)).toEqual(["database", "cache"])
        expectIsoBetween(reply.body.timestamp, before, after)
      })
    )
  )

  it.live("POST creates: 201, message, Location, defaults, trimmed name, ISO UTC timestamps, key order", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const reply = yield* api.post(products, { name: "  Laptop  ", price: 999.99 })
        const after = Date.now()
        expect(reply.status).toBe(201)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["message", "product"])
        expect(reply.body.message).toBe("Product created successfully")
        const product = reply.body.product
        expect(Object.keys(product)).toEqual(productKeys)
        expect(Number.isInteger(product.id)).toBe(true)
        expect(product.id).toBeGreaterThan(0)
        expect(reply.headers.get("location")).toBe(`${products}/${product.id}`)
        expect(product).toMatchObject({ name: "Laptop", description: "", price: 999.99, stock: 0, category: "" })
        expectIsoBetween(product.created_at, before, after)
        expect(product.updated_at).toBe(product.created_at)

        // Every field given, at the rules' upper bounds.
        const full = {
          name: "n".repeat(255),
          description: "d".repeat(1000),
          price: 0.01,
          stock: 50,
          category: "c".repeat(100)
        }
        const second = yield* api.post(products, full)
        expect(second.status, second.text).toBe(201)
        expect(second.body.product).toMatchObject(full)
        expect(second.body.product.id).toBeGreaterThan(product.id)
        expect(second.headers.get("location")).toBe(`${products}/${second.body.product.id}`)

        // What was answered is what was stored.
        const stored = yield* api.get(`${products}/${product.id}`)
        expect(stored.body.product).toEqual(product)
      })
    )
  )

  it.live("POST accepts application/json with parameters and a body of exactly 1 MiB", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const charset = yield* api.request("POST", products, {
          json: { name: "A", price: 1 },
          headers: { "content-type": "application/json; charset=utf-8" }
        })
        expect(charset.status, charset.text).toBe(201)
        const upper = yield* api.request("POST", products, {
          json: { name: "B", price: 2 },
          headers: { "content-type": "Application/JSON" }
        })
        expect(upper.status, upper.text).toBe(201)
        const json = JSON.stringify({ name: "C", price: 3 })
        const padded = json + " ".repeat(1024 * 1024 - json.length)
        expect(Buffer.byteLength(padded)).toBe(1024 * 1024)
        const limit = yield* api.request("POST", products, {
          body: padded,
          headers: { "content-type": "application/json" }
        })
        expect(limit.status, limit.text).toBe(201)
        expect(limit.body.product.name).toBe("C")
      })
    )
  )

  it.live("GET by id: from_cache false then true, X-Cache MISS then HIT, duration_ms a number", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const product = yield* api.create({ name: "Mouse", price: 19.5, stock: 3, category: "Peripherals" })
        const durations: Array<number> = []
        const first = yield* api.get(`${products}/${product.id}`)
        expect(first.status).toBe(200)
        expectJson(first)
        expect(Object.keys(first.body)).toEqual(["product", "from_cache", "duration_ms"])
        expect(first.body.product).toEqual(product)
        expect(Object.keys(first.body.product)).toEqual(productKeys)
        expect(first.body.from_cache).toBe(false)
        expect(first.headers.get("x-cache")).toBe("MISS")
        expectDuration(first.body.duration_ms)
        durations.push(first.body.duration_ms)
        for (let i = 0; i < 3; i++) {
          const again = yield* api.get(`${products}/${product.id}`)
          expect(again.status).toBe(200)
          expect(Object.keys(again.body)).toEqual(["product", "from_cache", "duration_ms"])
          expect(again.body.product).toEqual(product)
          expect(Object.keys(again.body.product)).toEqual(productKeys)
          expect(again.body.from_cache).toBe(true)
          expect(again.headers.get("x-cache")).toBe("HIT")
          expectDuration(again.body.duration_ms)
          durations.push(again.body.duration_ms)
        }
        // Milliseconds with fractions, not whole milliseconds (a hit takes well under 1 ms).
        expect(
          durations.some((d) => !Number.isInteger(d)),
          String(durations)
        ).toBe(true)
      })
    )
  )

  it.live("GET list: ordered by id, total, default and explicit offset/limit, limit capped at 100, cached", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const empty = yield* api.get(products)
        expect(empty.status).toBe(200)
        expect(empty.body).toMatchObject({ products: [], total: 0, offset: 0, limit: 20, from_cache: false })

        const created: Array<Product> = []
        for (const name of ["c", "a", "b"]) created.push(yield* api.create({ name, price: 1 }))

        const page = yield* api.get(products)
        expect(page.status).toBe(200)
        expectJson(page)
        expect(Object.keys(page.body)).toEqual(["products", "total", "offset", "limit", "from_cache", "duration_ms"])
        expect(page.body.products).toEqual(created)
        expect(page.body.products.map((p: Product) => p.id)).toEqual(
          [...created.map((p) => p.id)].sort((a, b) => a - b)
        )
        for (const p of page.body.products) expect(Object.keys(p)).toEqual(productKeys)
        expect(page.body).toMatchObject({ total: 3, offset: 0, limit: 20, from_cache: false })
        expect(page.headers.get("x-cache")).toBe("MISS")
        expectDuration(page.body.duration_ms)

        const repeat = yield* api.get(products)
        expect(repeat.body).toMatchObject({ products: created, total: 3, offset: 0, limit: 20, from_cache: true })
        expect(repeat.headers.get("x-cache")).toBe("HIT")
        expectDuration(repeat.body.duration_ms)

        const window = yield* api.get(`${products}?offset=1&limit=1`)
        expect(window.body).toMatchObject({ products: [created[1]], total: 3, offset: 1, limit: 1, from_cache: false })
        const tail = yield* api.get(`${products}?offset=2&limit=5`)
        expect(tail.body).toMatchObject({ products: [created[2]], total: 3, offset: 2, limit: 5 })
        const beyond = yield* api.get(`${products}?offset=10`)
        expect(beyond.body).toMatchObject({ products: [], total: 3, offset: 10, limit: 20 })

        // A limit above 100 is lowered to 100, in the answer and in the cache key.
        const big = yield* api.get(`${products}?limit=500`)
        expect(big.status).toBe(200)
        expect(big.body).toMatchObject({ products: created, total: 3, offset: 0, limit: 100, from_cache: false })
        const hundred = yield* api.get(`${products}?limit=100`)
        expect(hundred.body).toMatchObject({ limit: 100, from_cache: true })
        expect(hundred.headers.get("x-cache")).toBe("HIT")
        const hundredOne = yield* api.get(`${products}?limit=101`)
        expect(hundredOne.body).toMatchObject({ limit: 100, from_cache: true })
      })
    )
  )

  it.live("PUT updates only the given fields and answers the product as stored", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const original = yield* api.create({
          name: "Desk",
          description: "Oak",
          price: 250,
          stock: 4,
          category: "Furniture"
        })
        yield* Effect.sleep("5 millis")

        const before = Date.now()
        const reply = yield* api.put(`${products}/${original.id}`, { stock: 7 })
        const after = Date.now()
        expect(reply.status, reply.text).toBe(200)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["message", "product"])
        expect(reply.body.message).toBe("Product updated successfully, cache invalidated")
        const updated = reply.body.product
        expect(Object.keys(updated)).toEqual(productKeys)
        expect(updated).toEqual({ ...original, stock: 7, updated_at: updated.updated_at })
        expect(updated.created_at).toBe(original.created_at)
        expectIsoBetween(updated.updated_at, before, after)
        expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(updated.created_at))

        const stored = yield* api.get(`${products}/${original.id}`)
        expect(stored.body).toMatchObject({ product: updated, from_cache: false })

        const renamed = yield* api.put(`${products}/${original.id}`, { name: "  Standing desk  " })
        expect(renamed.status).toBe(200)
        expect(renamed.body.product).toEqual({
          ...updated,
          name: "Standing desk",
          updated_at: renamed.body.product.updated_at
        })

        const everything = { name: "Table", description: "", price: 99.5, stock: 0, category: "" }
        const all = yield* api.put(`${products}/${original.id}`, everything)
        expect(all.status).toBe(200)
        expect(all.body.product).toEqual({
          ...everything,
          id: original.id,
          created_at: original.created_at,
          updated_at: all.body.product.updated_at
        })
        const final = yield* api.get(`${products}/${original.id}`)
        expect(final.body.product).toEqual(all.body.product)
        const list = yield* api.get(products)
        expect(list.body.products).toEqual([all.body.product])
      })
    )
  )

  it.live("DELETE answers 200 once, then the product is gone (GET, PUT, DELETE 404)", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const keep = yield* api.create({ name: "Keep", price: 1 })
        const gone = yield* api.create({ name: "Gone", price: 2 })
        yield* api.get(`${products}/${gone.id}`) // cached, so the delete must invalidate it
        const reply = yield* api.del(`${products}/${gone.id}`)
        expect(reply.status).toBe(200)
        expectJson(reply)
        expect(reply.body).toEqual({ message: "Product deleted successfully, cache invalidated" })
        expectError(yield* api.get(`${products}/${gone.id}`), 404, "not_found", "GET after DELETE")
        expectError(yield* api.del(`${products}/${gone.id}`), 404, "not_found", "DELETE again")
        expectError(yield* api.put(`${products}/${gone.id}`, { stock: 1 }), 404, "not_found", "PUT after DELETE")
        const list = yield* api.get(products)
        expect(list.body).toMatchObject({ products: [keep], total: 1 })
        // Ids are not handed out again.
        const next = yield* api.create({ name: "Next", price: 3 })
        expect(next.id).toBeGreaterThan(gone.id)
      })
    )
  )

  it.live("cache stats: exact shape, hit_rate a fraction; reset zeroes every counter", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const before = Date.now()
        const initial = yield* api.get("/api/v1/cache/stats")
        expect(initial.status).toBe(200)
        expectJson(initial)
        expect(Object.keys(initial.body)).toEqual(["cache_stats", "timestamp"])
        expectStats(initial.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        expectIsoBetween(initial.body.timestamp, before, Date.now())

        const product = yield* api.create({ name: "P", price: 1 })
        for (let i = 0; i < 4; i++) yield* api.get(`${products}/${product.id}`) // 1 miss + set, 3 hits
        const stats = yield* api.get("/api/v1/cache/stats")
        expectStats(stats.body, { hits: 3, misses: 1, sets: 1, deletes: 0, errors: 0 })
        expect(stats.body.cache_stats.hit_rate).toBe(0.75)

        const resetAt = Date.now()
        const reset = yield* api.request("POST", "/api/v1/cache/stats/reset")
        expect(reset.status).toBe(200)
        expectJson(reset)
        expect(Object.keys(reset.body)).toEqual(["message", "cache_stats", "timestamp"])
        expect(reset.body.message).toBe("Cache statistics reset")
        expectStats(reset.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        expectIsoBetween(reset.body.timestamp, resetAt, Date.now())

        const afterReset = yield* api.get("/api/v1/cache/stats")
        expectStats(afterReset.body, { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })
        // Counting goes on from zero; the cache itself was not emptied by the reset.
        yield* api.get(`${products}/${product.id}`)
        const counting = yield* api.get("/api/v1/cache/stats")
        expectStats(counting.body, { hits: 1, misses: 0, sets: 0, deletes: 0, errors: 0 })
      })
    )
  )
})

// ---------------------------------------------------------------------------------------------------------------

describe("error rows", () => {
  const badIds = ["abc", "0", "-1", "1.5", "1e3", "9007199254740992", "99999999999999999999", "+1", "0x10"]

  it.live("path ids that are not positive decimal integers up to 2^53-1 are 400 on GET, PUT and DELETE", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        yield* api.create({ name: "One", price: 1 })
        for (const id of badIds) {
          const path = `${products}/${encodeURIComponent(id)}`
          expectError(yield* api.get(path), 400, "invalid_request", `GET ${id}`, "id")
          expectError(yield* api.put(path, { stock: 1 }), 400, "invalid_request", `PUT ${id}`, "id")
          expectError(yield* api.del(path), 400, "invalid_request", `DELETE ${id}`, "id")
        }
        const largest = `${products}/9007199254740991`
        expectError(yield* api.get(largest), 404, "not_found", "GET 2^53-1")
        expectError(yield* api.put(largest, { stock: 1 }), 404, "not_found", "PUT 2^53-1")
        expectError(yield* api.del(largest), 404, "not_found", "DELETE 2^53-1")
        const list = yield* api.get(products)
        expect(list.body.total).toBe(1)
      })
    )
  )

  it.live("an absent product is 404 not_found on GET, PUT and DELETE", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        expectError(yield* api.get(`${products}/1`), 404, "not_found", "GET 1")
        expectError(yield* api.put(`${products}/1`, { name: "x" }), 404, "not_found", "PUT 1")
        expectError(yield* api.del(`${products}/1`), 404, "not_found", "DELETE 1")
        // The PUT did not create it.
        const list = yield* api.get(products)
        expect(list.body.total).toBe(0)
        // A 404 is not remembered past the create of that id.
        const created = yield* api.create({ name: "Now here", price: 1 })
        expect(created.id).toBe(1)
        const found = yield* api.get(`${products}/1`)
        expect(found.status).toBe(200)
        expect(found.body.product).toEqual(created)
      })
    )
  )

  it.live("query offset/limit that are not integers, offset < 0 or limit < 1 are 400", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const cases: Array<[string, string]> = [
          ["offset=-1", "offset"],
          ["offset=abc", "offset"],
          ["offset=1.5", "offset"],
          ["offset=1e3", "offset"],
          ["offset=", "offset"],
          ["limit=0", "limit"],
          ["limit=-1", "limit"],
          ["limit=1.5", "limit"],
          ["limit=abc", "limit"],
          ["limit=", "limit"]
        ]
        for (const [query, field] of cases) {
          expectError(yield* api.get(`${products}?${query}`), 400, "invalid_request", query, field)
        }
      })
    )
  )

  it.live("unknown routes are 404 not_found JSON", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        for (const [method, path] of [
          ["GET", "/"],
          ["GET", "/nope"],
          ["GET", "/api/v1/product"],
          ["GET", "/api/v1/products/1/extra"],
          ["POST", "/api/v2/products"],
          ["DELETE", "/api/v1/cache"]
        ] as const) {
          expectError(yield* api.request(method, path), 404, "not_found", `${method} ${path}`)
        }
      })
    )
  )

  it.live("a known path with the wrong method is 405 method_not_allowed with an Allow header", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const cases: Array<[string, string, Array<string>]> = [
          // HEAD is served wherever GET is (the router answers it), so Allow lists it.
          ["PATCH", `${products}/1`, ["GET", "HEAD", "PUT", "DELETE"]],
          ["POST", `${products}/1`, ["GET", "HEAD", "PUT", "DELETE"]],
          ["POST", "/health", ["GET", "HEAD"]],
          ["DELETE", products, ["GET", "HEAD", "POST"]],
          ["PUT", products, ["GET", "HEAD", "POST"]],
          ["POST", "/api/v1/cache/stats", ["GET", "HEAD"]],
          ["GET", "/api/v1/cache/stats/reset", ["POST"]]
        ]
        for (const [method, path, allowed] of cases) {
          const reply = yield* api.request(method, path, method === "GET" ? {} : { json: { name: "x", price: 1 } })
          expectError(reply, 405, "method_not_allowed", `${method} ${path}`)
          const allow = (reply.headers.get("allow") ?? "").split(",").map((m) => m.trim())
          expect(allow.sort(), `${method} ${path}`).toEqual([...allowed].sort())
        }
        // Nothing was written by the refused methods.
        const list = yield* api.get(products)
        expect(list.body.total).toBe(0)
      })
    )
  )

  it.live("a body that is not application/json is 415 on POST and PUT, before anything is written", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const original = yield* api.create({ name: "Orig", price: 1 })
        const body = JSON.stringify({ name: "Changed", price: 2 })
        const path = `${products}/${original.id}`
        for (const method of ["POST", "PUT"]) {
          const target = method === "POST" ? products : path
          for (const contentType of ["text/plain", "application/x-www-form-urlencoded", "application/jsonp"]) {
            const reply = yield* api.request(method, target, { body, headers: { "content-type": contentType } })
            expectError(reply, 415, "unsupported_media_type", `${method} ${contentType}`)
          }
          const missing = yield* api.raw(method, target, {
            body,
            headers: { "content-length": String(Buffer.byteLength(body)) }
          })
          expectError(missing, 415, "unsupported_media_type", `${method} without content-type`)
        }
        const list = yield* api.get(products)
        expect(list.body).toMatchObject({ products: [original], total: 1, from_cache: false })
      })
    )
  )

  it.live("a body larger than 1 MiB is 413 payload_too_large, with or without Content-Length", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const original = yield* api.create({ name: "Orig", price: 1 })
        const big = JSON.stringify({ name: "Big", price: 1, description: "x".repeat(1024 * 1024) })
        const headers = { "content-type": "application/json" }
        expectError(yield* api.request("POST", products, { body: big, headers }), 413, "payload_too_large", "POST")
        expectError(
          yield* api.request("PUT", `${products}/${original.id}`, { body: big, headers }),
          413,
          "payload_too_large",
          "PUT"
        )
        // Exactly one byte over the limit.
        const json = JSON.stringify({ name: "C", price: 3 })
        const over = json + " ".repeat(1024 * 1024 + 1 - json.length)
        expectError(
          yield* api.request("POST", products, { body: over, headers }),
          413,
          "payload_too_large",
          "1 MiB + 1"
        )
        const list = yield* api.get(products)
        expect(list.body).toMatchObject({ products: [original], total: 1, from_cache: false })
      })
    )
  )

  it.live("a chunked body larger than 1 MiB (no Content-Length) is 413 payload_too_large, and nothing is written", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const chunk = Buffer.from(" ".repeat(64 * 1024))
        const chunks = [Buffer.from('{"name":"Chunked","price":1,"x":"'), ...Array.from({ length: 17 }, () => chunk)]
        chunks.push(Buffer.from('"}'))
        const chunked = yield* api.raw("POST", products, {
          headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
          chunks
        })
        expectError(chunked, 413, "payload_too_large", "chunked POST of 1.1 MiB")
        const list = yield* api.get(products)
        expect(list.body).toMatchObject({ products: [], total: 0 })
      })
    )
  )
})

// ---------------------------------------------------------------------------------------------------------------

describe("bad input changes nothing", () => {
  const name256 = "n".repeat(256)
  // [label, raw JSON body, field the message must name (or undefined)]
  const invalidBodies: Array<[string, string, string | undefined]> = [
    ["invalid JSON", '{"name": "a", "price": 1', undefined],
    ["invalid JSON (trailing comma)", '{"name": "a", "price": 1,}', undefined],
    ["empty body", "", undefined],
    ["null", "null", undefined],
    ["array", "[]", undefined],
    ["string", '"x"', undefined],
    ["number", "42", undefined]
  ]
  const brokenRules: Array<[string, Record<string, unknown>, string]> = [
    ["price as string", { price: "1" }, "price"],
    ["price 0", { price: 0 }, "price"],
    ["price -1", { price: -1 }, "price"],
    ["price null", { price: null }, "price"],
    ["empty name", { name: "" }, "name"],
    ["whitespace name", { name: "   " }, "name"],
    ["name of 256", { name: name256 }, "name"],
    ["name as number", { name: 5 }, "name"],
    ["description of 1001", { description: "d".repeat(1001) }, "description"],
    ["description null", { description: null }, "description"],
    ["stock -1", { stock: -1 }, "stock"],
    ["stock 1.5", { stock: 1.5 }, "stock"],
    ["stock as string", { stock: "3" }, "stock"],
    ["category of 101", { category: "c".repeat(101) }, "category"],
    ["category as number", { category: 1 }, "category"],
    ["unknown field prize", { prize: 10 }, "prize"],
    ["id in body", { id: 99 }, "id"],
    ["created_at in body", { created_at: "2026-01-01T00:00:00.000Z" }, "created_at"],
    ["updated_at in body", { updated_at: "2026-01-01T00:00:00.000Z" }, "updated_at"]
  ]

  /** The database, read past the cache (a limit no earlier read used), still holds exactly `expected`. */
  const unchanged = (
    api: Effect.Effect.Success<typeof client>,
    expected: Array<Product>,
    limit: number,
    label: string
  ) =>
    Effect.gen(function* () {
      const list = yield* api.get(`${products}?limit=${limit}`)
      expect(list.body.from_cache, label).toBe(false)
      expect(list.body.total, label).toBe(expected.length)
      expect(list.body.products, label).toEqual(expected)
      for (const product of expected) {
        const one = yield* api.get(`${products}/${product.id}`)
        expect(one.body.product, label).toEqual(product)
      }
    })

  it.live("rejected POSTs: 400 naming the field, no product created", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const existing = yield* api.create({ name: "Existing", price: 10 })
        const valid = { name: "New", price: 5 }
        const cases: Array<[string, string, string | undefined]> = [
          ...invalidBodies,
          ["price missing", JSON.stringify({ name: "a" }), "price"],
          ["name missing", JSON.stringify({ price: 1 }), "name"],
          ["price not finite (1e400)", '{"name":"a","price":1e400}', "price"],
          ["__proto__ field", '{"name":"a","price":1,"__proto__":{"x":1}}', "__proto__"],
          ...brokenRules.map(([label, patch, field]): [string, string, string] => [
            label,
            JSON.stringify({ ...valid, ...patch }),
            field
          ])
        ]
        let limit = 1
        for (const [label, body, field] of cases) {
          const reply = yield* api.request("POST", products, { body, headers: { "content-type": "application/json" } })
          expectError(reply, 400, "invalid_request", `POST ${label}`, ...(field === undefined ? [] : [field]))
          yield* unchanged(api, [existing], limit++, `after POST ${label}`)
        }
        // No row was inserted, not even one rolled back: the next id is the one after the existing product.
        const next = yield* api.create(valid)
        expect(next.id).toBe(existing.id + 1)
      })
    )
  )

  it.live("rejected PUTs: 400 naming the field, the product unchanged", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const existing = yield* api.create({
          name: "Existing",
          description: "Desc",
          price: 10,
          stock: 2,
          category: "Cat"
        })
        const path = `${products}/${existing.id}`
        yield* api.get(path) // cached: a rejected update must not have touched it either
        const cases: Array<[string, string, string | undefined]> = [
          ...invalidBodies,
          ["empty update {}", "{}", undefined],
          ["price not finite (1e400)", '{"price":1e400}', "price"],
          ...brokenRules.map(([label, patch, field]): [string, string, string] => [
            label,
            // A valid change beside the broken one: it must not be applied either.
            JSON.stringify({ stock: 99, ...patch }),
            field
          ])
        ]
        let limit = 1
        for (const [label, body, field] of cases) {
          const reply = yield* api.request("PUT", path, { body, headers: { "content-type": "application/json" } })
          expectError(reply, 400, "invalid_request", `PUT ${label}`, ...(field === undefined ? [] : [field]))
          yield* unchanged(api, [existing], limit++, `after PUT ${label}`)
        }
      })
    )
  )

  it.scopedLive("GET /health is 503 unhealthy when the database fails under the running app", () =>
    Effect.gen(function* () {
      const database = yield* Databases.make
      yield* Effect.gen(function* () {
        const api = yield* client
        expect((yield* api.get("/health")).body.checks).toEqual({ database: "up", cache: "up" })
        // Another connection removes the table under the running app: the file still opens, the catalog is gone.
        yield* database.dropProductsTable
        const before = Date.now()
        const reply = yield* api.get("/health")
        const after = Date.now()
        expect(reply.status, reply.text).toBe(503)
        expectJson(reply)
        expect(Object.keys(reply.body)).toEqual(["service", "status", "checks", "timestamp"])
        expect(reply.body.status).toBe("unhealthy")
        expect(reply.body.checks).toEqual({ database: "down", cache: "up" })
        expectIsoBetween(reply.body.timestamp, before, after)
      }).pipe(Effect.provide(memoryApp(undefined, database)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )

  it.scopedLive("a database failure is 503 unavailable (or 500 internal_error), without SQL or a stack trace", () =>
    Effect.gen(function* () {
      const database = yield* Databases.make
      yield* Effect.gen(function* () {
        const api = yield* client
        const existing = yield* api.create({ name: "Existing", price: 1 })
        // Another connection removes the table under the running app.
        yield* database.dropProductsTable
        const failures = [
          yield* api.get(products),
          yield* api.get(`${products}/${existing.id}`),
          yield* api.post(products, { name: "New", price: 1 }),
          yield* api.put(`${products}/${existing.id}`, { stock: 1 }),
          yield* api.del(`${products}/${existing.id}`)
        ]
        for (const reply of failures) {
          expect([500, 503], reply.text).toContain(reply.status)
          expectError(reply, reply.status, reply.status === 503 ? "unavailable" : "internal_error", "db failure")
        }
        // /health says so in its own shape, not as an error body (and the document says the same).
        const health = yield* api.get("/health")
        expect(health.status, health.text).toBe(503)
        expect(health.body).toMatchObject({ status: "unhealthy", checks: { database: "down" } })
      }).pipe(Effect.provide(memoryApp(undefined, database)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )
})

// ---------------------------------------------------------------------------------------------------------------

describe("cache behaviour through the API", () => {
  it.live("the Go original's 'Testing the Cache' scenario, step by step", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const stats = () => Effect.map(api.get("/api/v1/cache/stats"), (reply) => reply.body)

        // 1. Create a product: it invalidates keys that do not exist yet, so nothing is counted.
        const product = yield* api.create({ name: "Laptop", price: 999.99, stock: 50, category: "Electronics" })
        expectStats(yield* stats(), { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0 })

        // 2. Get it twice: from the database (miss, then stored), then from the cache.
        const first = yield* api.get(`${products}/${product.id}`)
        const second = yield* api.get(`${products}/${product.id}`)
        expect([first.body.from_cache, second.body.from_cache]).toEqual([false, true])
        expect(second.body.product).toEqual(product)

        // 3. 1 miss, 1 hit (and the one entry stored).
        expectStats(yield* stats(), { hits: 1, misses: 1, sets: 1, deletes: 0, errors: 0 })

        // 4. Update: the cached entry is removed (one delete); no list page was cached.
        const updated = yield* api.put(`${products}/${product.id}`, { price: 899.99 })
        expect(updated.status).toBe(200)
        expectStats(yield* stats(), { hits: 1, misses: 1, sets: 1, deletes: 1, errors: 0 })

        // 5. Get again: from the database, with the new value.
        const third = yield* api.get(`${products}/${product.id}`)
        expect(third.body.from_cache).toBe(false)
        expect(third.headers.get("x-cache")).toBe("MISS")
        expect(third.body.product).toEqual(updated.body.product)
        expect(third.body.product.price).toBe(899.99)

        // 6. 2 misses, 1 hit; stored twice, deleted once.
        const final = yield* stats()
        expectStats(final, { hits: 1, misses: 2, sets: 2, deletes: 1, errors: 0 })
        expect(final.cache_stats.hit_rate).toBeCloseTo(1 / 3, 12)
      })
    )
  )

  it.live("an absent product is remembered briefly: the second 404 is a hit; creating it ends that at once", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        expect((yield* api.get(`${products}/1`)).status).toBe(404)
        expect((yield* api.get(`${products}/1`)).status).toBe(404)
        const stats = yield* api.get("/api/v1/cache/stats")
        // The remembered "not found" is bookkeeping, not a product entry: it is not counted as a set.
        expectStats(stats.body, { hits: 1, misses: 1, sets: 0, deletes: 0, errors: 0 })
        const created = yield* api.create({ name: "Now here", price: 1 })
        expect(created.id).toBe(1)
        const read = yield* api.get(`${products}/1`)
        expect(read.status).toBe(200)
        expect(read.body.product).toEqual(created)
      })
    )
  )

  it.live("writes invalidate cached list pages: create, update and delete are visible on the next read", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const a = yield* api.create({ name: "A", price: 1 })

        const cold = yield* api.get(products)
        expect(cold.body).toMatchObject({ products: [a], total: 1, from_cache: false })
        const warm = yield* api.get(products)
        expect(warm.body).toMatchObject({ products: [a], total: 1, from_cache: true })
        expect(warm.headers.get("x-cache")).toBe("HIT")
        yield* api.get(`${products}?limit=5`) // a second cached page: every list key must go

        // Create: the next list read misses and shows the new product.
        const b = yield* api.create({ name: "B", price: 2 })
        const afterCreate = yield* api.get(products)
        expect(afterCreate.body).toMatchObject({ products: [a, b], total: 2, from_cache: false })
        expect(afterCreate.headers.get("x-cache")).toBe("MISS")
        const otherPage = yield* api.get(`${products}?limit=5`)
        expect(otherPage.body).toMatchObject({ products: [a, b], total: 2, from_cache: false })
        expectStats((yield* api.get("/api/v1/cache/stats")).body, {
          hits: 1,
          misses: 4,
          sets: 4,
          deletes: 2,
          errors: 0
        })

        // Update: the list shows the new value.
        expect((yield* api.get(products)).body.from_cache).toBe(true)
        const updated = yield* api.put(`${products}/${a.id}`, { name: "A2" })
        const afterUpdate = yield* api.get(products)
        expect(afterUpdate.body).toMatchObject({ products: [updated.body.product, b], total: 2, from_cache: false })
        expect(afterUpdate.body.products[0].name).toBe("A2")

        // Delete: the list no longer has it.
        expect((yield* api.get(products)).body.from_cache).toBe(true)
        const removed = yield* api.del(`${products}/${b.id}`)
        expect(removed.status).toBe(200)
        const afterDelete = yield* api.get(products)
        expect(afterDelete.body).toMatchObject({ products: [updated.body.product], total: 1, from_cache: false })
        const again = yield* api.get(products)
        expect(again.body).toMatchObject({ products: [updated.body.product], total: 1, from_cache: true })
      })
    )
  )
})

// ---------------------------------------------------------------------------------------------------------------

describe("docs", () => {
  it.live("/docs serves HTML and /docs/openapi.json is an OpenAPI 3.1 document with the product paths", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const html = yield* api.get("/docs")
        expect(html.status).toBe(200)
        expect(html.headers.get("content-type") ?? "").toMatch(/^text\/html\b/)
        expect(html.text).toMatch(/<html/i)

        const doc = yield* api.get("/docs/openapi.json")
        expect(doc.status).toBe(200)
        expectJson(doc)
        expect(doc.body.openapi).toMatch(/^3\.1\.\d+$/)
        const paths = doc.body.paths
        expect(Object.keys(paths["/api/v1/products"]).sort()).toEqual(expect.arrayContaining(["get", "post"]))
        expect(Object.keys(paths["/api/v1/products/{id}"])).toEqual(expect.arrayContaining(["get", "put", "delete"]))
        expect(Object.keys(paths["/api/v1/cache/stats"])).toContain("get")
        expect(Object.keys(paths["/api/v1/cache/stats/reset"])).toContain("post")
        expect(Object.keys(paths["/health"])).toContain("get")
      })
    )
  )
})

describe("the lean path for GET by id and of a list page", () => {
  // Canonical spellings are answered by the lean path (LeanPath.ts), other spellings of the same read by the HttpApi
  // route. In the same cache state the two must send the same answer: status, headers and body, byte for byte but
  // for the time measured.
  const timeless = (text: string) => text.replace(/"duration_ms":[0-9.e+-]+/, '"duration_ms":0')
  const comparedHeaders = ["content-type", "x-cache", "x-request-id", "x-content-type-options", "location"]

  const expectSameAnswer = (lean: Reply, routed: Reply, label: string) => {
    expect(lean.status, label).toBe(routed.status)
    for (const name of comparedHeaders)
      expect(lean.headers.get(name), `${label}: ${name}`).toBe(routed.headers.get(name))
    const names = (reply: Reply) => [...reply.headers.keys()].sort()
    expect(names(lean), label).toEqual(names(routed))
    for (const reply of [lean, routed]) {
      expect(Number(reply.headers.get("content-length")), label).toBe(Buffer.byteLength(reply.text))
    }
    expect(timeless(lean.text), label).toBe(timeless(routed.text))
  }

  /** The same read both ways, with the caller's request id; `between` restores the cache state in between. */
  const bothWays = (leanPath: string, routedPath: string, between: Effect.Effect<void, never, Cache> = Effect.void) =>
    Effect.gen(function* () {
      const app = yield* App
      const headers = { "x-request-id": "compare-1" }
      const lean = yield* app.request("GET", leanPath, { headers })
      yield* between
      const routed = yield* app.request("GET", routedPath, { headers })
      expectSameAnswer(lean, routed, `${leanPath} vs ${routedPath}`)
      return lean
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
        expect((yield* api.request("HEAD", path)).status).not.toBe(500)
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
        for (const [lean, routed, key] of pairs) {
          const evictPage = evict([key], ["product:guard:list"])
          yield* evictPage
          expect((yield* bothWays(lean, routed, evictPage)).headers.get("x-cache")).toBe("MISS")
          expect((yield* bothWays(lean, routed)).headers.get("x-cache")).toBe("HIT")
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
