import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { App, memoryApp } from "./support/TestApp.js"

describe("smoke", () => {
  it.live("serves", () =>
    Effect.gen(function* () {
      const app = yield* App
      const created = yield* app.request("POST", "/api/v1/products", { json: { name: "A", price: 1 } })
      expect(created.status).toBe(201)
      const first = yield* app.get(`/api/v1/products/${created.body.product.id}`)
      const second = yield* app.get(`/api/v1/products/${created.body.product.id}`)
      expect([first.body.from_cache, second.body.from_cache]).toEqual([false, true])
    }).pipe(Effect.provide(memoryApp()))
  )
})
