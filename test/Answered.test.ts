import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Answered from "../src/Http/Answered.js"
import type { Answer } from "../src/Http/Answered.js"
import * as HttpObservability from "../src/Http/Observability.js"
import { products } from "./support/HttpClient.js"
import { App, eventually, memoryApp } from "./support/TestApp.js"

// The "answered" hook HTTP observability exposes (what the dashboard records from): each answer reaches every
// subscriber once, with what the request log saw, on both request paths; nothing after unsubscribing.

const listen = () => {
  const heard: Array<Answer> = []
  const stop = Answered.subscribe((answer) => heard.push(answer))
  return { heard, stop }
}

describe("the answered hook", () => {
  it("hands each recorded answer to every subscriber once, and nothing after it unsubscribes", () => {
    expect(Answered.heard()).toBe(false)
    const first = listen()
    const second = listen()
    expect(Answered.heard()).toBe(true)
    HttpObservability.record("/api/v1/products/:id", "GET", 200, 1.5, "/api/v1/products/7?x=1", "HIT")
    // A method a client made up is named as the metrics name it.
    HttpObservability.record("unmatched", "BREW", 503, 2, "/pot", "MISS", true)
    const expected: Array<Answer> = [
      {
        method: "GET",
        path: "/api/v1/products/7?x=1",
        status: 200,
        xCache: "HIT",
        elapsedMillis: 1.5,
        cacheFailed: false
      },
      { method: "OTHER", path: "/pot", status: 503, xCache: "MISS", elapsedMillis: 2, cacheFailed: true }
    ]
    expect(first.heard).toEqual(expected)
    expect(second.heard).toEqual(expected)

    first.stop()
    // Stopping twice must not take another subscriber with it.
    first.stop()
    HttpObservability.record("/health", "GET", 200, 1, "/health", undefined)
    expect(first.heard).toHaveLength(2)
    expect(second.heard).toHaveLength(3)
    second.stop()
    expect(Answered.heard()).toBe(false)
  })

  it.live("hears the fast path's answers and the HttpApi app's, as they were sent", () =>
    Effect.gen(function* () {
      const app = yield* App
      const { heard, stop } = listen()
      const answered = (count: number) =>
        Effect.flatMap(eventually(Effect.sync(() => heard.length >= count)), (done) =>
          Effect.sync(() => expect(done, `${count} answers heard`).toBe(true))
        )
      const created = yield* app.request("POST", products, { json: { name: "Lamp", price: 5 } })
      yield* answered(1)
      const canonical = `${products}/${created.body.product.id}`
      // The fast path takes the canonical spelling; the HttpApi route every other, and unknown paths.
      const routed = `${products}/0${created.body.product.id}`
      for (const [path, count] of [
        [canonical, 2],
        [canonical, 3],
        [routed, 4],
        ["/nowhere", 5]
      ] as const) {
        yield* app.get(path)
        yield* answered(count)
      }
      expect(heard.map(({ elapsedMillis: _, ...rest }) => rest)).toEqual([
        { method: "POST", path: products, status: 201, xCache: undefined, cacheFailed: false },
        { method: "GET", path: canonical, status: 200, xCache: "MISS", cacheFailed: false },
        { method: "GET", path: canonical, status: 200, xCache: "HIT", cacheFailed: false },
        { method: "GET", path: routed, status: 200, xCache: "HIT", cacheFailed: false },
        { method: "GET", path: "/nowhere", status: 404, xCache: undefined, cacheFailed: false }
      ])
      for (const answer of heard) expect(answer.elapsedMillis).toBeGreaterThan(0)

      // Unsubscribed, it hears nothing more: a second listener shows when the next answer has been recorded.
      stop()
      const after = listen()
      yield* app.get(canonical)
      expect(yield* eventually(Effect.sync(() => after.heard.length === 1))).toBe(true)
      after.stop()
      expect(heard).toHaveLength(5)
    }).pipe(Effect.provide(memoryApp()))
  )
})
