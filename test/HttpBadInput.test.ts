import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import * as Databases from "./support/Databases.js"
import { products, client, fresh, expectJson, expectError, expectIsoBetween, rawRequest } from "./support/HttpClient.js"
import type { Product } from "./support/HttpClient.js"
import { App, memoryApp } from "./support/TestApp.js"

// A rejected request changes nothing, and a failing database answers without leaking (on both databases,
// vitest.config.ts). Every test gets a fresh app, so the database is empty and the cache statistics start at zero.

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
    ["updated_at in body", { updated_at: "2026-01-01T00:00:00.000Z" }, "updated_at"],
    // JSON escapes that are not text: PostgreSQL refused a NUL with a 500, and both databases stored a lone
    // surrogate as U+FFFD without a word (issue 25).
    ["NUL in name", { name: "a\u0000b" }, "name"],
    ["NUL in description", { description: "\u0000" }, "description"],
    ["NUL in category", { category: "x\u0000" }, "category"],
    ["lone high surrogate in name", { name: "a\ud800" }, "name"],
    ["lone low surrogate in description", { description: "\udc00x" }, "description"],
    ["reversed surrogate pair in category", { category: "\udc00\ud800" }, "category"]
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

  it.live(
    "a body that is not UTF-8 (a surrogate encoded on its own, a stray byte): 400 naming the field, sent whole or chunked",
    () =>
      fresh(
        Effect.gen(function* () {
          const api = yield* client
          const app = yield* App
          const bytes = (...parts: Array<string | Array<number>>) =>
            Buffer.concat(parts.map((part) => (typeof part === "string" ? Buffer.from(part) : Buffer.from(part))))
          const cases: Array<[string, Buffer, string]> = [
            ["ED A0 80 in name", bytes('{"name":"a', [0xed, 0xa0, 0x80], '","price":1}'), "name"],
            ["FF in category", bytes('{"name":"a","price":1,"category":"', [0xff], '"}'), "category"],
            [
              "F0 9F 98 cut short in description",
              bytes('{"name":"a","price":1,"description":"', [0xf0, 0x9f, 0x98], '"}'),
              "description"
            ]
          ]
          for (const [label, body, field] of cases) {
            const whole = yield* Effect.promise(async () => {
              const response = await fetch(app.url + products, {
                method: "POST",
                headers: { "content-type": "application/json" },
                body
              })
              return { status: response.status, body: (await response.json()) as { error: string; message: string } }
            })
            expect(whole.status, label).toBe(400)
            expect(whole.body.error, label).toBe("invalid_request")
            expect(whole.body.message, label).toMatch(new RegExp(`^${field} is not valid UTF-8`))
            const chunked = yield* rawRequest(app.url, "POST", products, {
              headers: { "content-type": "application/json", "transfer-encoding": "chunked" },
              chunks: [body.subarray(0, 10), body.subarray(10)]
            })
            expectError(chunked, 400, "invalid_request", `${label}, chunked`, field)
          }
          expect((yield* api.get(`${products}?limit=7`)).body.total).toBe(0)
          // An update is decoded as strictly (a canonical PUT is answered on the fast path, not the routed one).
          const stored = yield* api.request("POST", products, { json: { name: "kept", price: 1 } })
          for (const [label, body, field] of cases) {
            const update = yield* Effect.promise(async () => {
              const response = await fetch(`${app.url}${products}/${stored.body.product.id}`, {
                method: "PUT",
                headers: { "content-type": "application/json" },
                body
              })
              return { status: response.status, body: (await response.json()) as { error: string; message: string } }
            })
            expect(update.status, `PUT ${label}`).toBe(400)
            expect(update.body.message, `PUT ${label}`).toMatch(new RegExp(`^${field} is not valid UTF-8`))
          }
          expect((yield* api.get(`${products}/${stored.body.product.id}`)).body.product.name).toBe("kept")
          yield* api.request("DELETE", `${products}/${stored.body.product.id}`)
          // The same characters, encoded properly, are taken.
          const emoji = yield* api.request("POST", products, {
            body: bytes('{"name":"a', [0xf0, 0x9f, 0x98, 0x80], '","price":1}').toString("utf8"),
            headers: { "content-type": "application/json" }
          })
          expect(emoji.status, emoji.text).toBe(201)
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
        expect(Object.keys(reply.body)).toEqual(["service", "status", "checks", "timestamp", "cache_topology"])
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
