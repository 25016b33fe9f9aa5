import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger, LogLevel } from "effect"
import { Api, RequireJson } from "../src/Api.js"
import * as Databases from "./support/Databases.js"
import { products, client, fresh } from "./support/HttpClient.js"
import type { Reply } from "./support/TestApp.js"
import { App, memoryApp } from "./support/TestApp.js"

// The fast path (Http/FastPath.ts) and the HttpApi route answer a write alike (on both databases).

describe("the fast path for the writes", () => {
  // The fast path decodes the body itself and checks the content type the way RequireJson does (a subset of it): a
  // middleware added to this endpoint, its group or the API would run on other spellings only. This fails first.
  it("the write it answers carries RequireJson and no other HttpApi middleware", () => {
    const group = Api.groups.products
    expect(Api.middlewares.size).toBe(0)
    expect(group.middlewares.size).toBe(0)
    expect([...group.endpoints.update.middlewares]).toEqual([RequireJson])
    expect([...group.endpoints.create.middlewares]).toEqual([RequireJson])
    expect(group.endpoints.remove.middlewares.size).toBe(0)
  })

  // The time of the write and of the request differ between two writes; everything else must not.
  const timeless = (text: string) =>
    text.replace(/"updated_at":"[^"]*"/, '"updated_at":"-"').replace(/"duration_ms":[0-9.e+-]+/, '"duration_ms":0')

  const expectSameAnswer = (fast: Reply, routed: Reply, label: string, normal = timeless) => {
    expect(fast.status, label).toBe(routed.status)
    for (const name of ["content-type", "x-request-id", "x-content-type-options"])
      expect(fast.headers.get(name), `${label}: ${name}`).toBe(routed.headers.get(name))
    const names = (reply: Reply) => [...reply.headers.keys()].sort()
    expect(names(fast), label).toEqual(names(routed))
    for (const reply of [fast, routed]) {
      expect(Number(reply.headers.get("content-length")), label).toBe(Buffer.byteLength(reply.text))
    }
    expect(normal(fast.text), label).toBe(normal(routed.text))
  }

  /** The same PUT to the canonical path (the fast path) and to another spelling of it (the HttpApi route). */
  const bothWays = (id: number, body: string, contentType = "application/json") =>
    Effect.gen(function* () {
      const app = yield* App
      const headers = { "x-request-id": "compare-put", "content-type": contentType }
      const fast = yield* app.request("PUT", `${products}/${id}`, { headers, body })
      const routed = yield* app.request("PUT", `${products}/0${id}`, { headers, body })
      expectSameAnswer(fast, routed, `PUT ${id} ${JSON.stringify(body)} (${contentType})`)
      return fast
    })

  it.live("accepted, refused and unknown: the same answers both ways", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const created = yield* api.create({ name: "Same", price: 3 })
        const updated = yield* bothWays(created.id, JSON.stringify({ stock: 7, name: "Changed" }))
        expect(updated.status).toBe(200)
        expect(updated.body.product).toMatchObject({ id: created.id, stock: 7, name: "Changed" })
        // A byte-order mark and a charset: what the platform reads, this path reads alike.
        expect((yield* bothWays(created.id, '\uFEFF{"stock":8}')).status).toBe(400)
        expect((yield* bothWays(created.id, '{"stock":9}', "application/json; charset=utf-8")).status).toBe(200)
        const refused = [
          "{}",
          '{"stok":1}',
          '{"stock":"many"}',
          '{"stock":-1}',
          '{"price":0}',
          '"size"',
          "nope",
          "",
          "[]",
          "null",
          `${"[".repeat(70)}${"]".repeat(70)}`
        ]
        for (const body of refused) expect((yield* bothWays(created.id, body)).status, body).toBe(400)
        expect((yield* bothWays(created.id + 1000, '{"stock":1}')).status).toBe(404)
        // Refused before the body: another content type, which this path leaves to the route.
        expect((yield* bothWays(created.id, '{"stock":1}', "text/plain")).status).toBe(415)
        const read = yield* api.get(`${products}/${created.id}`)
        expect(read.body.product).toMatchObject({ stock: 9, name: "Changed" })
      })
    )
  )

  it.live("POST and DELETE: the same answers both ways", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        // Two creates make two products: their ids (in the body and in Location) and times are all that may differ.
        const idless = (text: string) =>
          timeless(text)
            .replace(/"id":[0-9]+/, '"id":0')
            .replace(/"created_at":"[^"]*"/, '"created_at":"-"')
        const create = (body: string, contentType: string) =>
          app.request("POST", products, {
            headers: { "x-request-id": "compare-post", "content-type": contentType },
            body
          })
        // Another spelling of JSON, which RequireJson takes and the fast path leaves to the HttpApi route.
        const routedJson = "application/json; version=1"
        const posted: Array<Reply> = []
        for (const body of ['{"name":"Both","price":2}', "{}", '{"name":"X","price":1,"colour":"red"}', "nope"]) {
          const fast = yield* create(body, "application/json")
          const routed = yield* create(body, routedJson)
          expectSameAnswer(fast, routed, `POST ${body}`, idless)
          const locations = [fast, routed].map((reply) => reply.headers.get("location")?.replace(/[0-9]+$/, "N"))
          expect(locations[0], body).toBe(locations[1])
          posted.push(fast, routed)
        }
        expect(posted.map((reply) => reply.status)).toEqual([201, 201, 400, 400, 400, 400, 400, 400])
        expect(posted[0]!.headers.get("location")).toBe(`${products}/${posted[0]!.body.product.id}`)
        const [first, second] = [posted[0]!.body.product.id, posted[1]!.body.product.id]
        const remove = (path: string) => app.request("DELETE", path, { headers: { "x-request-id": "compare-delete" } })
        // The second time round the product is gone: the same 404, naming the id, both ways.
        for (const [fastPath, routedPath] of [
          [`${products}/${first}`, `${products}/0${second}`],
          [`${products}/${first}`, `${products}/0${first}`]
        ] as const) {
          const fast = yield* remove(fastPath)
          const routed = yield* remove(routedPath)
          expectSameAnswer(fast, routed, `DELETE ${fastPath} vs ${routedPath}`)
        }
        const again = yield* remove(`${products}/${first}`)
        expect([again.status, again.body]).toEqual([404, { error: "not_found", message: `product ${first} not found` }])
        expect((yield* app.get(`${products}/${second}`)).status).toBe(404)
      })
    )
  )

  it.live("a write through the fast path invalidates the product and the list pages", () =>
    fresh(
      Effect.gen(function* () {
        const api = yield* client
        const created = yield* api.create({ name: "Cached", price: 3 })
        yield* api.get(`${products}/${created.id}`)
        yield* api.get(`${products}?offset=0&limit=5`)
        expect((yield* api.get(`${products}/${created.id}`)).headers.get("x-cache")).toBe("HIT")
        const app = yield* App
        yield* app.request("PUT", `${products}/${created.id}`, { json: { price: 4 } })
        const byId = yield* api.get(`${products}/${created.id}`)
        expect([byId.headers.get("x-cache"), byId.body.product.price]).toEqual(["MISS", 4])
        const page = yield* api.get(`${products}?offset=0&limit=5`)
        expect(page.headers.get("x-cache")).toBe("MISS")
        expect(page.body.products.find((p: { id: number }) => p.id === created.id).price).toBe(4)
      })
    )
  )

  it.scopedLive("a database failure is the same 503 both ways", () =>
    Effect.gen(function* () {
      const database = yield* Databases.make
      yield* Effect.gen(function* () {
        const api = yield* client
        const existing = yield* api.create({ name: "Existing", price: 1 })
        yield* database.dropProductsTable
        expect((yield* bothWays(existing.id, '{"stock":2}')).status).toBe(503)
        const app = yield* App
        for (const [method, fast, routed, body] of [
          ["DELETE", `${products}/${existing.id}`, `${products}/0${existing.id}`, undefined],
          ["POST", products, products, '{"name":"N","price":1}']
        ] as const) {
          const headers = (contentType: string) => ({ "x-request-id": "compare-503", "content-type": contentType })
          const options = (contentType: string) =>
            body === undefined ? { headers: headers(contentType) } : { headers: headers(contentType), body }
          const fastReply = yield* app.request(method, fast, options("application/json"))
          const routedReply = yield* app.request(method, routed, options("application/json; version=1"))
          expect(fastReply.status, method).toBe(503)
          expectSameAnswer(fastReply, routedReply, `${method} 503`)
        }
      }).pipe(Effect.provide(memoryApp(undefined, database)))
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )
})
