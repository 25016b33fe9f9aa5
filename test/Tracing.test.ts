import { HttpMiddleware } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, FiberRef, Layer, Option, Tracer } from "effect"
import * as Http from "node:http"
import { Cache } from "../src/Cache.js"
import * as CircuitBreaker from "../src/Cache/CircuitBreaker.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import * as Observed from "../src/Cache/Observed.js"
import { MemoryLive } from "../src/Services.js"
import { ProductService } from "../src/ProductService.js"
import * as Tracing from "../src/Tracing.js"
import { makeSwitchableCache } from "./support/Fakes.js"
import * as TestApp from "./support/TestApp.js"
import { laptop } from "./support/HttpClient.js"
import { App } from "./support/TestApp.js"

// The spans of a read and of the cache, tracing off without an endpoint, and OTLP export to a local collector.

describe("traces", () => {
  interface Recorded {
    readonly name: string
    readonly spanId: string
    readonly parentId: string | undefined
    readonly attributes: Map<string, unknown>
  }

  const recorder = () => {
    const spans: Array<Recorded> = []
    let ids = 0
    const tracer = Tracer.make({
      span: (name, parent, context, links, startTime, kind) => {
        const attributes = new Map<string, unknown>()
        const spanId = `span${++ids}`
        const parentId = Option.getOrUndefined(Option.map(parent, (p) => p.spanId))
        spans.push({ name, spanId, parentId, attributes })
        let status: Tracer.SpanStatus = { _tag: "Started", startTime }
        return {
          _tag: "Span",
          name,
          spanId,
          traceId: "trace",
          parent,
          context,
          get status() {
            return status
          },
          attributes,
          links,
          sampled: true,
          kind,
          end: (endTime, exit) => void (status = { _tag: "Ended", startTime, endTime, exit }),
          attribute: (key, value) => void attributes.set(key, value),
          event: () => {},
          addLinks: () => {}
        }
      },
      context: (f) => f()
    })
    /** The cache and repository spans under `root`, in the order they started. */
    const under = (root: Recorded) => {
      const descendants = new Set([root.spanId])
      const found: Array<Recorded> = []
      for (const span of spans) {
        if (span.parentId === undefined || !descendants.has(span.parentId)) continue
        descendants.add(span.spanId)
        if (span.name.startsWith("Cache.") || span.name.startsWith("ProductRepo.")) found.push(span)
      }
      return found
    }
    return { tracer, spans, under }
  }

  it.live(
    "a miss is Cache.lookup → ProductRepo.findById → Cache.fill under ProductService.getById; a hit only Cache.lookup",
    () =>
      Effect.gen(function* () {
        const service = yield* ProductService
        const created = yield* service.create(laptop)
        const { spans, tracer, under } = recorder()
        const traced = <A, E>(effect: Effect.Effect<A, E>) => Effect.withTracer(effect, tracer)

        expect((yield* traced(service.getById(created.id))).fromCache).toBe(false)
        const missRoot = spans.find((s) => s.name === "ProductService.getById")!
        expect(missRoot).toBeDefined()
        const miss = under(missRoot)
        expect(miss.map((s) => s.name)).toEqual(["Cache.lookup", "ProductRepo.findById", "Cache.fill"])
        expect(miss[0]!.attributes.get("cache.key")).toMatch(/id:\d+$/)
        expect(miss[0]!.attributes.get("cache.outcome")).toBe("miss")
        expect(miss[2]!.attributes.get("cache.outcome")).toBe("stored")

        spans.length = 0
        expect((yield* traced(service.getById(created.id))).fromCache).toBe(true)
        const hit = under(spans.find((s) => s.name === "ProductService.getById")!)
        expect(hit.map((s) => s.name)).toEqual(["Cache.lookup"])
        expect(hit[0]!.attributes.get("cache.outcome")).toBe("hit")
      }).pipe(Effect.provide(TestApp.layer({ cache: MemoryLive, tracing: true })))
  )

  // The fast path with tracing on: each read runs alone (no batch), under a server span of its own.
  it.live("over HTTP a read by id is an http.server GET span with ProductService.getById under it", () => {
    const { spans, tracer, under } = recorder()
    return Effect.gen(function* () {
      const app = yield* App
      const created = (yield* app.request("POST", "/api/v1/products", { json: laptop })).body.product
      spans.length = 0
      for (const xCache of ["MISS", "HIT"]) {
        const reply = yield* app.get(`/api/v1/products/${created.id}`)
        expect(reply.headers.get("x-cache")).toBe(xCache)
      }
      const servers = spans.filter((span) => span.name === "http.server GET")
      expect(servers.map((span) => span.attributes.get("http.route"))).toEqual([
        "/api/v1/products/:id",
        "/api/v1/products/:id"
      ])
      for (const server of servers) {
        const reads = spans.filter((span) => span.parentId === server.spanId)
        expect(reads.map((span) => span.name)).toEqual(["ProductService.getById"])
      }
      expect(under(servers[1]!).map((span) => span.name)).toEqual(["Cache.lookup"])
    }).pipe(Effect.provide(TestApp.layer({ cache: MemoryLive, tracer })))
  })

  // Tracing on changes which spans are recorded, not which code answers: a write takes the fast path too, alone,
  // under a server span of its own, its statement and its removals under the service's span.
  it.live(
    "over HTTP a write is an http.server PUT span with ProductService.update, its statement and removals under it",
    () => {
      const { spans, tracer, under } = recorder()
      return Effect.gen(function* () {
        const app = yield* App
        const created = (yield* app.request("POST", "/api/v1/products", { json: laptop })).body.product
        spans.length = 0
        const reply = yield* app.request("PUT", `/api/v1/products/${created.id}`, { json: { stock: 7 } })
        expect({ status: reply.status, stock: reply.body.product.stock }).toEqual({ status: 200, stock: 7 })
        const servers = spans.filter((span) => span.name === "http.server PUT")
        // The fast path's server span: the platform's would also copy every request and response header.
        expect(servers.map((span) => Object.fromEntries(span.attributes))).toEqual([
          {
            "http.request.method": "PUT",
            "http.route": "/api/v1/products/:id",
            "url.path": `/api/v1/products/${created.id}`,
            "url.scheme": "http",
            "http.response.status_code": 200
          }
        ])
        const writes = spans.filter((span) => span.parentId === servers[0]!.spanId)
        expect(writes.map((span) => span.name)).toEqual(["ProductService.update"])
        expect(under(servers[0]!).map((span) => span.name)).toEqual(["ProductRepo.update", "Cache.invalidate"])
      }).pipe(Effect.provide(TestApp.layer({ cache: MemoryLive, tracer })))
    }
  )

  it.effect("a failed cache operation's span says error, one the open circuit refused says skipped", () =>
    Effect.gen(function* () {
      const memory = yield* Effect.map(Layer.build(MemoryCache.layer), Context.get(Cache))
      const switchable = makeSwitchableCache(memory, true)
      const breaker = CircuitBreaker.make(switchable.cache, { ...CircuitBreaker.defaults, failureThreshold: 1 })
      const cache = Observed.make(breaker.cache, { spans: true })
      const { spans, tracer } = recorder()
      const slot = { key: "k", guard: "g", lease: "l", shadow: "s" }
      yield* Effect.exit(Effect.withTracer(cache.lookup(slot), tracer))
      yield* Effect.exit(Effect.withTracer(cache.lookup(slot), tracer))
      expect(spans.map((s) => [s.name, s.attributes.get("cache.outcome")])).toEqual([
        ["Cache.lookup", "error"],
        ["Cache.lookup", "skipped"]
      ])
      expect(spans[1]!.attributes.get("cache.error")).toMatch(/circuit open/)
    }).pipe(Effect.scoped)
  )

  it.effect("with no OTEL_EXPORTER_OTLP_ENDPOINT the tracer is off and the platform's http.server span too", () =>
    Effect.gen(function* () {
      expect(yield* FiberRef.get(FiberRef.currentTracerEnabled)).toBe(false)
      const skipHttpSpan = yield* FiberRef.get(HttpMiddleware.currentTracerDisabledWhen)
      expect(skipHttpSpan({} as never)).toBe(true)
    }).pipe(Effect.provide(Tracing.layer), Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
  )

  it.live("with OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported over OTLP/HTTP to <endpoint>/v1/traces", () =>
    Effect.gen(function* () {
      const received: Array<{ method: string; url: string; type: string; bytes: number }> = []
      const collector = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const server = Http.createServer((request, response) => {
            let bytes = 0
            request.on("data", (chunk: Buffer) => (bytes += chunk.length))
            request.on("end", () => {
              received.push({
                method: request.method ?? "",
                url: request.url ?? "",
                type: request.headers["content-type"] ?? "",
                bytes
              })
              response.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
      )
      const address = collector.address() as { port: number }
      const env = new Map([["OTEL_EXPORTER_OTLP_ENDPOINT", `http://127.0.0.1:${address.port}`]])
      // Closing the layer's scope flushes the batch processor.
      yield* Effect.void.pipe(
        Effect.withSpan("Probe.exported"),
        Effect.provide(Tracing.layer),
        Effect.withConfigProvider(ConfigProvider.fromMap(env))
      )
      expect(received).toHaveLength(1)
      expect(received[0]).toMatchObject({ method: "POST", url: "/v1/traces" })
      expect(received[0]!.bytes).toBeGreaterThan(0)
    }).pipe(Effect.scoped)
  )
})
