import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { products, client, fresh, expectError } from "./support/HttpClient.js"

// The contract's error rows over HTTP against the real app (on both databases, vitest.config.ts). Every test gets a fresh app, so the database is empty and the cache statistics start at zero.

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

  // A parse error quotes the body; a body that reads "size" or "too large" is still only invalid JSON.
  it.live("a small body that is not JSON is 400 invalid_request whatever its words, never 413", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const original = yield* api.create({ name: "Orig", price: 1 })
        const headers = { "content-type": "application/json" }
        for (const body of ["size", "too large", "maxBytes"]) {
          expectError(yield* api.request("POST", products, { body, headers }), 400, "invalid_request", `POST ${body}`)
          expectError(
            yield* api.request("PUT", `${products}/${original.id}`, { body, headers }),
            400,
            "invalid_request",
            `PUT ${body}`
          )
        }
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
