import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { maxJsonDepth } from "../src/Http/RequestBody.js"
import { rawConnect } from "./support/ServiceProcess.js"
import { App, memoryApp } from "./support/TestApp.js"

// Hostile requests against the real app: bodies nested deep, requests Node itself refuses, and the headers that keep
// a browser from reading an answer as something else.

const products = "/api/v1/products"

const fresh = <A, E>(self: Effect.Effect<A, E, App>) => Effect.provide(self, memoryApp())

/** `levels` arrays, one inside the other. */
const nestedArrays = (levels: number) => "[".repeat(levels) + "]".repeat(levels)

/** `levels` objects, one inside the other. */
const nestedObjects = (levels: number) => '{"a":'.repeat(levels) + "1" + "}".repeat(levels)

const post = (body: string) => Effect.flatMap(App, (app) => app.request("POST", products, { body, headers: json }))

const json = { "content-type": "application/json" }

describe("deeply nested JSON", () => {
  it.scopedLive("5,000 levels in a field: 400 invalid_request naming the limit, nothing created", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const body of [
          `{"name":"Laptop","price":1,"description":${nestedArrays(5_000)}}`,
          `{"name":"Laptop","price":1,"category":${nestedObjects(5_000)}}`
        ]) {
          const reply = yield* post(body)
          expect(reply.status, reply.text).toBe(400)
          expect(reply.body).toEqual({
            error: "invalid_request",
            message: `the request body must not nest deeper than ${maxJsonDepth} levels`
          })
        }
        expect((yield* app.get(products)).body.total).toBe(0)
      })
    )
  )

  it.scopedLive("an update nested 5,000 levels, also sent chunked: 400, the product unchanged", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const created = yield* post(`{"name":"Laptop","price":1}`)
        expect(created.status).toBe(201)
        const path = `${products}/${created.body.product.id}`
        const body = `{"price":2,"description":${nestedObjects(5_000)}}`
        // A ReadableStream body has no length: fetch sends it chunked.
        const chunked = new Blob([body]).stream()
        for (const sent of [body, chunked]) {
          const reply = yield* Effect.promise(() =>
            fetch(app.url + path, { method: "PUT", headers: json, body: sent, duplex: "half" } as RequestInit)
          )
          expect(reply.status).toBe(400)
          expect(((yield* Effect.promise(() => reply.json())) as { error: string }).error).toBe("invalid_request")
        }
        expect((yield* app.get(path)).body.product.price).toBe(1)
      })
    )
  )

  it.scopedLive(
    "the limit counts nesting, not brackets: at the limit the field's own rule answers, in strings none count",
    () =>
      fresh(
        Effect.gen(function* () {
          // The body object is level 1, so its field may nest maxJsonDepth - 1 more.
          const atLimit = yield* post(`{"name":"Laptop","price":1,"description":${nestedArrays(maxJsonDepth - 1)}}`)
          expect(atLimit.status).toBe(400)
          expect(atLimit.body.message).toMatch(/^description: /)
          const over = yield* post(`{"name":"Laptop","price":1,"description":${nestedArrays(maxJsonDepth)}}`)
          expect(over.body.message).toMatch(/nest deeper/)

          const brackets = `[{\\"[${"[{".repeat(300)}`
          const created = yield* post(`{"name":"Laptop","price":1,"description":"${brackets}"}`)
          expect(created.status, created.text).toBe(201)
          expect(created.body.product.description).toBe(JSON.parse(`"${brackets}"`))
        })
      )
  )
})

/** Sends `bytes` on a fresh connection and resolves with everything received once the server has closed it. */
const raw = (url: string, bytes: string) =>
  Effect.promise(async () => {
    const connection = await rawConnect(Number(new URL(url).port))
    connection.socket.write(bytes)
    return connection.closed
  })

/** One HTTP/1.1 response: status, headers (lower-cased names), body as its content-length says. */
const parseResponse = (text: string) => {
  const end = text.indexOf("\r\n\r\n")
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n")
  const headers = Object.fromEntries(
    lines.map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()])
  )
  const body = text.slice(end + 4)
  expect(Buffer.byteLength(body), "content-length").toBe(Number(headers["content-length"]))
  return { status: Number(statusLine!.split(" ")[1]), headers, body: JSON.parse(body) }
}

const clientErrors = (url: string, error: string) =>
  Effect.promise(async () => {
    const text = await (await fetch(`${url}/metrics`)).text()
    return Number(new RegExp(`^http_client_errors_total\\{error="${error}"\\} (\\d+)$`, "m").exec(text)?.[1])
  })

describe("requests Node refuses before the app sees them", () => {
  it.scopedLive("headers over Node's limit: 431 with the contract's JSON, Connection: close, counted", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const before = yield* clientErrors(app.url, "request_header_fields_too_large")
        const { error, text } = yield* raw(
          app.url,
          `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`
        )
        expect(error).toBeUndefined()
        const response = parseResponse(text)
        expect(response.status).toBe(431)
        expect(response.body).toEqual({
          error: "request_header_fields_too_large",
          message: "the request headers are too large"
        })
        expect(response.headers).toMatchObject({
          "content-type": "application/json",
          connection: "close",
          "x-content-type-options": "nosniff",
          "x-request-id": expect.stringMatching(/^[!-~]{1,128}$/)
        })
        expect(yield* clientErrors(app.url, "request_header_fields_too_large")).toBe(before + 1)
      })
    )
  )

  it.scopedLive("a request Node cannot parse: 400 invalid_request with the contract's JSON", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const request of [
          "GARBAGE\r\n\r\n",
          "GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
          "GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n"
        ]) {
          const response = parseResponse((yield* raw(app.url, request)).text)
          expect(response.status, request).toBe(400)
          expect(response.body).toEqual({ error: "invalid_request", message: "the request is not valid HTTP/1.1" })
          expect(response.headers["x-content-type-options"]).toBe("nosniff")
        }
      })
    )
  )
})

/** One request on its own connection, closed after the answer: `target` goes on the wire exactly as written. */
const once = (url: string, method: string, target: string, headers = "Host: x\r\n") =>
  Effect.map(raw(url, `${method} ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`), ({ text }) =>
    parseResponse(text)
  )

const contractAnswer = (response: ReturnType<typeof parseResponse>, status: number, error: string, message: RegExp) => {
  expect(response.status, JSON.stringify(response.body)).toBe(status)
  expect(response.body).toEqual({ error, message: expect.stringMatching(message) })
  expect(response.headers).toMatchObject({
    "content-type": "application/json",
    "x-content-type-options": "nosniff",
    "x-request-id": expect.stringMatching(/^[!-~]{1,128}$/)
  })
}

describe("HTTP edges Node would answer with an empty body (issue 25)", () => {
  it.scopedLive("HTTP/1.1 without Host: 400 in the contract's JSON; HTTP/1.0 needs none", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const target of ["/health", `${products}/1`, products]) {
          contractAnswer(yield* once(app.url, "GET", target, ""), 400, "invalid_request", /Host header/)
        }
        const old = parseResponse((yield* raw(app.url, "GET /health HTTP/1.0\r\n\r\n")).text)
        expect(old.status).toBe(200)
      })
    )
  )

  it.scopedLive("an Expect other than 100-continue: 417 in the contract's JSON; 100-continue still served", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        contractAnswer(
          yield* once(app.url, "GET", "/health", "Host: x\r\nExpect: bogus\r\n"),
          417,
          "expectation_failed",
          /100-continue/
        )
        const body = `{"name":"a","price":1}`
        const continued = yield* raw(
          app.url,
          `POST ${products} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n` +
            `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
        )
        expect(continued.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /)
      })
    )
  )
})

describe("request targets the router would cut short (issue 25)", () => {
  it.scopedLive("a ';' in a path: 400 for an id (on the fast path's reads too), 404 for a path, 405 by method", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const id = (yield* post(`{"name":"Laptop","price":1}`)).body.product.id as number
        for (const method of ["GET", "DELETE"]) {
          const reply = yield* once(app.url, method, `${products}/${id};DROP`)
          contractAnswer(reply, 400, "invalid_request", /^id must be a positive integer$/)
        }
        const head = yield* raw(app.url, `HEAD ${products}/${id};DROP HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
        expect(head.text).toMatch(/^HTTP\/1\.1 400 /)
        contractAnswer(yield* once(app.url, "GET", `${products}/${id}%3BDROP`), 400, "invalid_request", /^id /)
        contractAnswer(yield* once(app.url, "GET", `${products};x`), 404, "not_found", /no route/)
        contractAnswer(yield* once(app.url, "GET", "/health;x"), 404, "not_found", /no route/)
        contractAnswer(yield* once(app.url, "GET", `${products}/;x`), 400, "invalid_request", /^id /)
        const refused = yield* once(app.url, "PATCH", `${products}/${id};x`)
        contractAnswer(refused, 405, "method_not_allowed", /PATCH/)
        expect(refused.headers.allow).toBe("GET, HEAD, PUT, DELETE")
        // Nothing was deleted, and the product itself is still served.
        expect((yield* app.get(`${products}/${id}`)).status).toBe(200)
      })
    )
  )

  it.scopedLive("a '#' anywhere in a request is named as such, not as a bad limit", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const target of [`${products}?offset=0&limit=5#a`, "/health#x", `${products}/1#x`]) {
          contractAnswer(yield* once(app.url, "GET", target), 400, "invalid_request", /'#'/)
        }
      })
    )
  )

  it.scopedLive("offset and limit take any safe integer; past it the message says so", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const far = yield* once(app.url, "GET", `${products}?offset=9007199254740991&limit=5`)
        expect(far.status, JSON.stringify(far.body)).toBe(200)
        expect(far.body).toMatchObject({ products: [], offset: 9007199254740991, limit: 5 })
        const beyond = yield* once(app.url, "GET", `${products}?offset=9007199254740992`)
        contractAnswer(beyond, 400, "invalid_request", /^offset must be at most 9007199254740991$/)
        const negative = yield* once(app.url, "GET", `${products}?offset=-1`)
        contractAnswer(negative, 400, "invalid_request", /^offset must be an integer >= 0$/)
      })
    )
  )
})

describe("security headers", () => {
  it.scopedLive(
    "X-Content-Type-Options: nosniff on every answer: success, each error, the hot path, /metrics, /docs",
    () =>
      fresh(
        Effect.gen(function* () {
          const app = yield* App
          const created = yield* post(`{"name":"<script>alert(1)</script>","price":1}`)
          const replies = [
            created,
            yield* app.get(`${products}/${created.body.product.id}`),
            yield* app.get(`${products}/999`),
            yield* app.get(products),
            yield* app.get(`${products}/`),
            yield* app.get(`${products}/abc`),
            yield* app.get("/nowhere"),
            yield* app.request("PATCH", products),
            yield* app.request("POST", products, { body: "{", headers: json }),
            yield* app.request("POST", products, { body: "{}", headers: { "content-type": "text/plain" } }),
            yield* app.get("/health"),
            yield* app.get("/api/v1/cache/stats"),
            yield* app.get("/metrics"),
            yield* app.get("/docs"),
            yield* app.get("/docs/openapi.json")
          ]
          expect(replies.map((reply) => reply.status)).toEqual([
            201, 200, 404, 200, 200, 400, 404, 405, 400, 415, 200, 200, 200, 200, 200
          ])
          for (const reply of replies) expect(reply.headers.get("x-content-type-options")).toBe("nosniff")
        })
      )
  )

  it.scopedLive(
    "/docs: a Content-Security-Policy that allows its own inline script and style by hash, nothing else",
    () =>
      fresh(
        Effect.gen(function* () {
          const app = yield* App
          const docs = yield* app.get("/docs")
          const policy = docs.headers.get("content-security-policy") ?? ""
          const directives = Object.fromEntries(
            policy.split(";").map((directive) => {
              const [name, ...sources] = directive.trim().split(/\s+/)
              return [name!, sources]
            })
          )
          expect(directives["default-src"]).toEqual(["'none'"])
          expect(directives["frame-ancestors"]).toEqual(["'none'"])
          expect(policy).not.toMatch(/unsafe-|https?:|\*/)
          // Nothing is loaded from elsewhere: every script and style the page has is inline, and each is allowed.
          expect(docs.text).not.toMatch(/<script[^>]*\bsrc=|<link\b/i)
          const sha = (source: string) => `'sha256-${createHash("sha256").update(source).digest("base64")}'`
          const scripts = [...docs.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)]
            .filter(([, attributes]) => !attributes!.includes("application/json"))
            .map(([, , source]) => sha(source!))
          const styles = [...docs.text.matchAll(/<style[^>]*>([\s\S]*?)<\/style>/g)].map(([, source]) => sha(source!))
          expect(scripts.length).toBeGreaterThan(0)
          expect(directives["script-src"]).toEqual(scripts)
          expect(directives["style-src"]).toEqual(styles)
          expect(directives["connect-src"]).toEqual(["'self'"])
          // JSON answers are not pages: no policy to parse on each of them.
          expect((yield* app.get("/health")).headers.get("content-security-policy")).toBeNull()
        })
      )
  )
})
