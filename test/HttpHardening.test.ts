import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { maxJsonDepth } from "../src/HttpContract.js"
import { App, memoryApp } from "./support/TestApp.js"

// Hostile requests against the real app: bodies nested deep.

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
