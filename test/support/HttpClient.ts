import { expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import type { Cache } from "../../src/Cache.js"
import * as OpenApiCheck from "./OpenApiCheck.js"
import type { Reply } from "./TestApp.js"
import { App, memoryApp } from "./TestApp.js"

// What the HTTP suites share: a client whose every reply is checked against the served OpenAPI document and for
// leaked internals, a fresh app per test, and the contract's assertions.

export const products = "/api/v1/products"
export const laptop = { name: "Laptop", description: "", price: 999.99, stock: 5, category: "Electronics" }
export const productKeys = ["id", "name", "description", "price", "stock", "category", "created_at", "updated_at"]
export const statsKeys = ["hits", "misses", "sets", "deletes", "errors", "hit_rate", "total_gets", "stale"]
export const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/

// Every reply is checked for leaked internals (stack traces, SQL, driver names).

export const assertNoLeak = (method: string, path: string, reply: Reply) => {
  if (path.startsWith("/docs")) return
  const label = `${method} ${path} leaked internals: ${reply.text.slice(0, 300)}`
  expect(reply.text, label).not.toMatch(/^\s*at /m)
  expect(reply.text, label).not.toMatch(/\bat .*\.(ts|js):\d+/)
  expect(reply.text, label).not.toMatch(
    /\bSELECT\b|\bINSERT\b|\bUPDATE products\b|\bDELETE FROM\b|sqlite|postgres|\brelation\b/i
  )
}

/** A raw node:http request: no header is added on our behalf (no content-type), and the body may be chunked. */
export const rawRequest = (
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

export interface Sent {
  readonly headers?: Record<string, string>
  readonly body?: string
  readonly json?: unknown
}

export const client = Effect.gen(function* () {
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

export interface Product {
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
export const fresh = <A, E>(self: Effect.Effect<A, E, App | Cache>) => Effect.provide(self, memoryApp())

// Assertions

export const expectJson = (reply: Reply) =>
  expect(reply.headers.get("content-type") ?? "").toMatch(/^application\/json\b/)

/** `{"error": code, "message": "..."}` and nothing else; the message names each given field. */
export const expectError = (reply: Reply, status: number, code: string, label: string, ...fields: Array<string>) => {
  const context = `${label} -> ${reply.status} ${reply.text}`
  expect(reply.status, context).toBe(status)
  expectJson(reply)
  expect(Object.keys(reply.body ?? {}), context).toEqual(["error", "message"])
  expect(reply.body.error, context).toBe(code)
  expect(typeof reply.body.message, context).toBe("string")
  expect(reply.body.message.length, context).toBeGreaterThan(0)
  for (const field of fields) expect(reply.body.message, context).toMatch(new RegExp(`\\b${field}\\b`))
}

export const expectIsoBetween = (value: unknown, from: number, to: number) => {
  expect(value).toMatch(isoUtc)
  const millis = Date.parse(value as string)
  expect(millis).toBeGreaterThanOrEqual(from)
  expect(millis).toBeLessThanOrEqual(to)
}

export const expectDuration = (value: unknown) => {
  expect(typeof value).toBe("number")
  expect(Number.isFinite(value)).toBe(true)
  expect(value as number).toBeGreaterThanOrEqual(0)
}

export const expectStats = (
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
