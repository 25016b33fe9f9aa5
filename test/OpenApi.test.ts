import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { client, expectJson, fresh } from "./support/HttpClient.js"
import * as OpenApiCheck from "./support/OpenApiCheck.js"
import type { Reply } from "./support/TestApp.js"
import { App } from "./support/TestApp.js"

// The served OpenAPI document says what the service does (issue 12), and the edge answers that issue found wrong.
// Every reply here is also checked against the document, as in the Http*.test.ts suites.

const products = "/api/v1/products"

const documented = Effect.gen(function* () {
  const app = yield* App
  const checker = yield* OpenApiCheck.ofApp(app)
  const document = (yield* app.get("/docs/openapi.json")).body as Record<string, any>
  const request = (method: string, path: string, options: { readonly json?: unknown } = {}) =>
    Effect.tap(app.request(method, path, options), (reply) =>
      Effect.sync(() =>
        OpenApiCheck.expectDocumented(checker, {
          method,
          path,
          requestHeaders: options.json === undefined ? {} : { "content-type": "application/json" },
          requestBody: options.json === undefined ? undefined : JSON.stringify(options.json),
          status: reply.status,
          headers: reply.headers,
          text: reply.text
        })
      )
    )
  return { checker, document, request }
})

const expectInvalid = (reply: Reply, label: string, message: RegExp) => {
  expect(reply.status, `${label}: ${reply.text}`).toBe(400)
  expect(reply.body, label).toEqual({ error: "invalid_request", message: expect.stringMatching(message) })
}

const emoji = "\u{1F600}" // one character, two UTF-16 units

describe("the service's edge answers (issue 12)", () => {
  it.live("an id with bad percent-encoding is 400 invalid_request, not 405", () =>
    fresh(
      Effect.gen(function* () {
        const { request } = yield* documented
        for (const method of ["GET", "DELETE"]) {
          expectInvalid(yield* request(method, `${products}/%ZZ`), method, /percent-encoding/)
        }
        expectInvalid(yield* request("PUT", `${products}/%ZZ`, { json: { price: 1 } }), "PUT", /percent-encoding/)
      })
    )
  )

  it.live("lengths count characters (code points): 255 emoji names and 1000 emoji descriptions are taken", () =>
    fresh(
      Effect.gen(function* () {
        const { request } = yield* documented
        const taken = yield* request("POST", products, {
          json: { name: emoji.repeat(255), description: emoji.repeat(1000), category: emoji.repeat(100), price: 1 }
        })
        expect(taken.status, taken.text).toBe(201)
        expect([...taken.body.product.name].length).toBe(255)
        const long = yield* request("POST", products, { json: { name: emoji.repeat(256), price: 1 } })
        expectInvalid(long, "256 emoji", /^name must be at most 255 characters$/)
        const update = yield* request("PUT", `${products}/${taken.body.product.id}`, {
          json: { description: emoji.repeat(1001) }
        })
        expectInvalid(update, "1001 emoji", /^description must be at most 1000 characters$/)
      })
    )
  )

  it.live("a stock above 2^53 is 'too large', a missing field is a sentence", () =>
    fresh(
      Effect.gen(function* () {
        const { request } = yield* documented
        expectInvalid(
          yield* request("POST", products, { json: { name: "a", price: 1, stock: 2 ** 53 } }),
          "stock 2^53",
          /^stock is too large/
        )
        expectInvalid(yield* request("POST", products, { json: { price: 1 } }), "no name", /^name is required$/)
      })
    )
  )

  it.live("HEAD is answered wherever GET is, without a body, and 405's Allow lists it", () =>
    fresh(
      Effect.gen(function* () {
        const { request } = yield* documented
        const head = yield* request("HEAD", "/health")
        expect(head.status).toBe(200)
        expect(head.text).toBe("")
        const refused = yield* request("DELETE", "/health")
        expect(refused.status).toBe(405)
        expect(refused.headers.get("allow")).toBe("GET, HEAD")
      })
    )
  )
})

describe("the served OpenAPI document", () => {
  it.live("each operation lists exactly the statuses it can answer, 400 with the contract's body only", () =>
    fresh(
      Effect.gen(function* () {
        const { document } = yield* documented
        const statuses = Object.fromEntries(
          Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, item]) =>
            Object.entries(item).map(([method, operation]) => [
              `${method} ${path}`,
              Object.keys(operation.responses).join(" ")
            ])
          )
        )
        // 413 and 500 anywhere (any body over 1 MiB is refused; the last-resort answer), 408, 417 and 431 too (the
        // Node server's refusals, before any route), 405 on every operation of a path (the answer for the methods it
        // does not serve), 503 where the database is read. HEAD has its GET's statuses.
        const anywhere = "405 408 413 417 431 500"
        expect(statuses).toEqual({
          "get /api/v1/products": `200 400 ${anywhere} 503`,
          "head /api/v1/products": `200 400 ${anywhere} 503`,
          "post /api/v1/products": `201 400 ${anywhere.replace("413", "413 415")} 503`,
          "get /api/v1/products/{id}": `200 400 404 ${anywhere} 503`,
          "head /api/v1/products/{id}": `200 400 404 ${anywhere} 503`,
          "put /api/v1/products/{id}": `200 400 404 ${anywhere.replace("413", "413 415")} 503`,
          "delete /api/v1/products/{id}": `200 400 404 ${anywhere} 503`,
          "get /api/v1/cache/stats": `200 ${anywhere}`,
          "head /api/v1/cache/stats": `200 ${anywhere}`,
          "post /api/v1/cache/stats/reset": `200 400 ${anywhere}`,
          "get /health": `200 ${anywhere} 503`,
          "head /health": `200 ${anywhere} 503`,
          "get /metrics": `200 ${anywhere}`,
          "head /metrics": `200 ${anywhere}`,
          "get /api/v1/cache/events": `200 ${anywhere}`,
          "head /api/v1/cache/events": `200 ${anywhere}`
        })
        const text = JSON.stringify(document)
        expect(text).not.toContain("HttpApiDecodeError")
        expect(document.paths["/health"].get.responses["503"].content["application/json"].schema).toEqual({
          $ref: "#/components/schemas/Unhealthy"
        })
        for (const item of Object.values(document.paths as Record<string, Record<string, any>>)) {
          for (const operation of Object.values(item)) expect(operation.summary).toEqual(expect.any(String))
        }
        expect(document.servers).toEqual([expect.objectContaining({ url: "/" })])
      })
    )
  )

  it.live("requests the contract refuses, the document's request schemas refuse too", () =>
    fresh(
      Effect.gen(function* () {
        const { checker, request } = yield* documented
        const created = yield* request("POST", products, { json: { name: "a", price: 1 } })
        const id = created.body.product.id as number
        const cases: Array<[string, string, unknown]> = [
          ["GET", `${products}/0`, undefined],
          ["GET", `${products}/9007199254740992`, undefined],
          ["GET", `${products}?limit=0`, undefined],
          ["GET", `${products}?offset=-1`, undefined],
          ["POST", products, { name: "   ", price: 1 }],
          ["POST", products, { name: "a".repeat(256), price: 1 }],
          ["POST", products, { name: "a", price: 0 }],
          ["POST", products, { name: "a", price: 1, stock: 1.5 }],
          ["POST", products, { name: "a", price: 1, stock: 2 ** 53 }],
          ["POST", products, { name: "a", price: 1, description: "d".repeat(1001) }],
          ["POST", products, { name: "a", price: 1, prize: 2 }],
          ["POST", products, { price: 1 }],
          ["PUT", `${products}/${id}`, {}],
          ["PUT", `${products}/${id}`, { id: 7 }]
        ]
        for (const [method, path, json] of cases) {
          const label = `${method} ${path} ${JSON.stringify(json)}`
          const reply = yield* request(method, path, json === undefined ? {} : { json })
          expect(reply.status, `${label}: ${reply.text}`).toBe(400)
          const verdict = checker.requestVerdict({
            method,
            path,
            requestHeaders: { "content-type": "application/json" },
            requestBody: json === undefined ? undefined : JSON.stringify(json),
            status: reply.status,
            headers: reply.headers,
            text: reply.text
          })
          expect(verdict?.problems, label).not.toEqual([])
        }
      })
    )
  )

  it.live("every example in the document is valid by the schema it illustrates", () =>
    fresh(
      Effect.gen(function* () {
        const { checker, document } = yield* documented
        const found = checker.examples()
        expect(found.length).toBeGreaterThan(10)
        for (const { at, problems } of found) expect(problems, at).toEqual([])
        expect(Object.keys(document.components.schemas)).toContain("Product")
      })
    )
  )
})

/** Every `$ref` in `node`. */
const refsIn = (node: unknown): Array<string> =>
  typeof node !== "object" || node === null
    ? []
    : Object.entries(node).flatMap(([key, value]) => (key === "$ref" ? [String(value)] : refsIn(value)))

describe("the document as tools read it (issue 25)", () => {
  it.live("HEAD and 405 with Allow are operations and responses a tool sees, not prose", () =>
    fresh(
      Effect.gen(function* () {
        const { document } = yield* documented
        for (const [path, item] of Object.entries(document.paths as Record<string, Record<string, any>>)) {
          if (item.get !== undefined) {
            expect(item.head, `HEAD ${path}`).toBeDefined()
            expect(Object.keys(item.head.responses)).toEqual(Object.keys(item.get.responses))
            for (const response of Object.values(item.head.responses) as Array<any>)
              expect(response.content).toBeUndefined()
          }
          for (const [method, operation] of Object.entries(item)) {
            expect(operation.responses["405"], `${method} ${path}`).toEqual({
              $ref: "#/components/responses/MethodNotAllowed"
            })
          }
        }
        expect(Object.keys(document.components.responses.MethodNotAllowed.headers)).toEqual(["Allow", "X-Request-Id"])
      })
    )
  )

  it.live("names a generator turns into good code; no unused component, no security scheme", () =>
    fresh(
      Effect.gen(function* () {
        const { document } = yield* documented
        const ids = Object.values(document.paths as Record<string, Record<string, any>>).flatMap((item) =>
          Object.values(item).map((operation) => operation.operationId as string)
        )
        expect(ids.sort()).toEqual(
          [
            "listProducts",
            "headListProducts",
            "createProduct",
            "getProduct",
            "headProduct",
            "updateProduct",
            "deleteProduct",
            "getCacheStats",
            "headCacheStats",
            "resetCacheStats",
            "getHealth",
            "headHealth",
            "getMetrics",
            "headMetrics",
            "streamCacheEvents",
            "headStreamCacheEvents"
          ].sort()
        )
        for (const id of ids) expect(id, "an identifier in camelCase").toMatch(/^[a-z][A-Za-z]*$/)
        const schemas = Object.keys(document.components.schemas)
        expect(schemas).not.toContain("Int")
        expect(document.paths["/api/v1/products"].post.responses["201"].content["application/json"].schema).toEqual({
          $ref: "#/components/schemas/ProductCreated"
        })
        // Every component is referenced from somewhere else in the document (redocly's no-unused-components).
        const refs = new Set(refsIn({ ...document, components: undefined }))
        for (const [kind, components] of Object.entries(document.components as Record<string, object>)) {
          for (const name of Object.keys(components)) {
            const ref = `#/components/${kind}/${name}`
            const inComponents = refsIn(
              Object.fromEntries(
                Object.entries(document.components).map(([k, c]) => [
                  k,
                  Object.fromEntries(Object.entries(c as object).filter(([n]) => `#/components/${k}/${n}` !== ref))
                ])
              )
            )
            expect(refs.has(ref) || inComponents.includes(ref), `${ref} is used`).toBe(true)
          }
        }
        expect(document.components.securitySchemes).toBeUndefined()
        expect(document.security).toEqual([])
        for (const item of Object.values(document.paths as Record<string, Record<string, any>>)) {
          for (const operation of Object.values(item)) expect(operation.security).toBeUndefined()
        }
      })
    )
  )

  it.live("the reset takes no body: one is a 400 that resets nothing, as the document says", () =>
    fresh(
      Effect.gen(function* () {
        const { document, request } = yield* documented
        const reset = document.paths["/api/v1/cache/stats/reset"].post
        expect(reset.requestBody).toBeUndefined()
        yield* request("GET", "/api/v1/products/1") // one miss on the counters
        const refused = yield* request("POST", "/api/v1/cache/stats/reset", { json: { hits: 0 } })
        expectInvalid(refused, "reset with a body", /takes no request body/)
        expect((yield* request("GET", "/api/v1/cache/stats")).body.cache_stats.misses).toBe(1)
        const done = yield* request("POST", "/api/v1/cache/stats/reset")
        expect(done.status, done.text).toBe(200)
        expect(done.body.cache_stats.misses).toBe(0)
      })
    )
  )
})

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
