import { describe, expect, it } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger, LogLevel, Option } from "effect"
import * as Path from "node:path"
import { MemoryLive } from "../src/Services.js"
import * as TestApp from "./support/TestApp.js"
import { products, laptop } from "./support/HttpClient.js"
import { App, observedApp } from "./support/TestApp.js"

// X-Request-Id and the request log line (LOG_REQUESTS), on the fast path and on the HttpApi route.

describe("request id and request log", () => {
  interface Line {
    readonly message: unknown
    readonly level: string
    readonly annotations: Record<string, unknown>
  }
  const captured: Array<Line> = []
  const capture = Logger.make<unknown, void>(({ annotations, logLevel, message }) => {
    captured.push({
      message: Array.isArray(message) && message.length === 1 ? message[0] : message,
      level: logLevel.label,
      annotations: Object.fromEntries(HashMap.toEntries(annotations))
    })
  })
  const withLogs = (level: LogLevel.LogLevel, logRequests = true, env: Record<string, string> = {}) =>
    TestApp.layer({ cache: MemoryLive, env: { LOG_REQUESTS: String(logRequests), ...env } }).pipe(
      Layer.provide(Logger.replace(Logger.defaultLogger, capture)),
      Layer.provide(Logger.minimumLogLevel(level))
    )

  /** The request line for `requestId`; it is written just after the answer, so it may lag the reply a little. */
  const requestLine = (requestId: string) =>
    Effect.gen(function* () {
      for (let i = 0; i < 50; i++) {
        const line = captured.find((l) => l.message === "http request" && l.annotations.request_id === requestId)
        if (line !== undefined) return Option.some(line)
        yield* Effect.sleep("10 millis")
      }
      return Option.none<Line>()
    })

  it.live("X-Request-Id is echoed when given and generated (unique) when not or when unusable", () =>
    Effect.gen(function* () {
      const app = yield* App
      const given = yield* app.request("GET", "/health", { headers: { "x-request-id": "trace-me-42" } })
      expect(given.headers.get("x-request-id")).toBe("trace-me-42")
      const first = (yield* app.get("/health")).headers.get("x-request-id")
      const second = (yield* app.get("/no/such/route")).headers.get("x-request-id")
      expect(first).toMatch(/^\S+$/)
      expect(second).toMatch(/^\S+$/)
      expect(first).not.toBe(second)
      const tooLong = "x".repeat(300)
      const replaced = yield* app.request("GET", "/health", { headers: { "x-request-id": tooLong } })
      expect(replaced.headers.get("x-request-id")).not.toBe(tooLong)
    }).pipe(Effect.provide(observedApp()))
  )

  it.live("one info line per request: method, route, status, duration_ms, from_cache, request_id", () =>
    Effect.gen(function* () {
      const app = yield* App
      const created = yield* app.request("POST", products, { json: laptop })
      const createdLine = yield* requestLine(created.headers.get("x-request-id")!)
      expect(Option.getOrThrow(createdLine).annotations).not.toHaveProperty("from_cache")
      const path = `${products}/${created.body.product.id}`
      const miss = yield* app.request("GET", path, { headers: { "x-request-id": "req-miss" } })
      const hit = yield* app.request("GET", path, { headers: { "x-request-id": "req-hit" } })
      expect([miss.headers.get("x-cache"), hit.headers.get("x-cache")]).toEqual(["MISS", "HIT"])
      const missLine = Option.getOrThrow(yield* requestLine("req-miss"))
      expect(missLine.level).toBe("INFO")
      expect(missLine.annotations).toMatchObject({
        method: "GET",
        route: "/api/v1/products/:id",
        status: 200,
        from_cache: false,
        request_id: "req-miss"
      })
      expect(typeof missLine.annotations.duration_ms).toBe("number")
      expect(Option.getOrThrow(yield* requestLine("req-hit")).annotations.from_cache).toBe(true)
      expect(
        captured.filter((l) => l.annotations.request_id === "req-hit" && l.message === "http request")
      ).toHaveLength(1)
    }).pipe(Effect.provide(withLogs(LogLevel.Info)))
  )

  it.live("without LOG_REQUESTS=true (the default) the request line is not written", () =>
    Effect.gen(function* () {
      const app = yield* App
      yield* app.request("GET", "/health", { headers: { "x-request-id": "default-quiet" } })
      yield* Effect.sleep("100 millis")
      expect(captured.some((l) => l.annotations.request_id === "default-quiet")).toBe(false)
    }).pipe(Effect.provide(withLogs(LogLevel.Info, false)))
  )

  it.scopedLive("a database failure is logged naming the request, on the fast path and on the HttpApi route", () =>
    Effect.gen(function* () {
      const file = Path.join(yield* TestApp.tempDir(), "products.db")
      yield* Effect.gen(function* () {
        const app = yield* App
        yield* TestApp.dropProductsTable(file)
        for (const [path, requestId] of [
          [`${products}/1`, "failed-lean"],
          [`${products}/01`, "failed-routed"]
        ] as const) {
          const reply = yield* app.request("GET", path, { headers: { "x-request-id": requestId } })
          expect(reply.status).toBe(503)
          const logged = () =>
            captured.find(
              (l) =>
                Array.isArray(l.message) &&
                l.message[0] === "database failure" &&
                l.annotations.request_id === requestId
            )
          for (let i = 0; i < 50 && logged() === undefined; i++) yield* Effect.sleep("10 millis")
          expect(logged()?.level, path).toBe("ERROR")
        }
      }).pipe(Effect.provide(withLogs(LogLevel.Info, false, { DB_PATH: file })))
    })
  )

  it.live("at LOG_LEVEL=warn the request line is not written", () =>
    Effect.gen(function* () {
      const app = yield* App
      yield* app.request("GET", "/health", { headers: { "x-request-id": "quiet-one" } })
      yield* Effect.sleep("100 millis")
      expect(captured.some((l) => l.annotations.request_id === "quiet-one")).toBe(false)
    }).pipe(Effect.provide(withLogs(LogLevel.Warning)))
  )
})
