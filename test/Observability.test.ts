import { HttpMiddleware } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Context,
  Effect,
  Exit,
  FiberRef,
  HashMap,
  Layer,
  Logger,
  LogLevel,
  Option,
  Tracer
} from "effect"
import * as Http from "node:http"
import * as Path from "node:path"
import parsePrometheus from "parse-prometheus-text-format"
import type { Family } from "parse-prometheus-text-format"
import * as AppConfig from "../src/AppConfig.js"
import { Cache } from "../src/Cache.js"
import * as CircuitBreaker from "../src/Cache/CircuitBreaker.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import * as Observed from "../src/Cache/Observed.js"
import { MemoryLive } from "../src/Cache/Live.js"
import { CacheStats } from "../src/Cache/Stats.js"
import * as Logging from "../src/Logging.js"
import * as PrometheusText from "../src/Metrics/PrometheusText.js"
import { ProductService } from "../src/ProductService.js"
import * as Tracing from "../src/Tracing.js"
import { makeSwitchableCache } from "./support/Fakes.js"
import * as TestApp from "./support/TestApp.js"
import { App } from "./support/TestApp.js"

// Metrics live in Effect's process-wide registry and other tests in this file move them too: every count is read
// before and after, never assumed to start at zero.

const products = "/api/v1/products"
const laptop = { name: "Laptop", description: "", price: 999.99, stock: 5, category: "Electronics" }

/** The app with the cache wrapped as CACHE_BACKEND=memory runs it (spans, failure notes). */
const observedApp = () => TestApp.layer({ cache: MemoryLive })

const scrape = Effect.gen(function* () {
  const reply = yield* (yield* App).get("/metrics")
  expect(reply.status).toBe(200)
  expect(reply.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
  return { text: reply.text, families: parsePrometheus(reply.text) }
})

/**
 * Scrapes until `ready` holds (at most a second). A request is counted just after its answer is written, so a
 * scrape sent the moment that answer arrives may, rarely, come first.
 */
const scrapeUntil = (ready: (families: ReadonlyArray<Family>) => boolean) =>
  Effect.gen(function* () {
    for (let attempt = 0; ; attempt++) {
      const scraped = yield* scrape
      if (ready(scraped.families) || attempt === 50) return scraped
      yield* Effect.sleep("20 millis")
    }
  })

const family = (families: ReadonlyArray<Family>, name: string) => {
  const found = families.find((f) => f.name === name)
  expect(found, `family ${name}`).toBeDefined()
  return found!
}

/** The value of the series of `name` whose labels include `labels`; 0 when there is none yet. */
const valueOf = (families: ReadonlyArray<Family>, name: string, labels: Record<string, string> = {}) => {
  const series = families
    .find((f) => f.name === name)
    ?.metrics.find((m) => Object.entries(labels).every(([key, value]) => m.labels?.[key] === value))
  return series === undefined ? 0 : Number(series.value ?? series.count)
}

/** One histogram series read from the text: its cumulative buckets in order, and its count. */
const histogramSeries = (text: string, name: string, labels: string) => {
  const bucket = new RegExp(`^${name}_bucket\\{${labels},le="([^"]+)"\\} (\\S+)$`)
  const buckets = text.split("\n").flatMap((line) => {
    const match = bucket.exec(line)
    return match === null ? [] : [[match[1]!, Number(match[2])] as const]
  })
  const count = new RegExp(`^${name}_count\\{${labels}\\} (\\S+)$`, "m").exec(text)
  return { buckets, count: Number(count?.[1]) }
}

const cacheOps = (families: ReadonlyArray<Family>, operation: string, outcome: string) =>
  valueOf(families, "cache_operations_total", { operation, outcome })

describe("GET /metrics", () => {
  it.live("parses as the Prometheus text format and shows every family with its labels", () =>
    Effect.gen(function* () {
      const app = yield* App
      const created = yield* app.request("POST", products, { json: laptop })
      yield* app.get(`${products}/${created.body.product.id}`)
      const { families, text } = yield* scrapeUntil(
        (families) => valueOf(families, "http_requests_total", { route: "/api/v1/products/:id", status: "200" }) > 0
      )
      const types = Object.fromEntries(families.map((f) => [f.name, f.type]))
      expect(types).toMatchObject({
        http_requests_total: "COUNTER",
        http_request_duration_seconds: "HISTOGRAM",
        cache_operations_total: "COUNTER",
        cache_coalesced_loads_total: "COUNTER",
        cache_circuit_state: "GAUGE",
        db_queries_total: "COUNTER",
        db_query_duration_seconds: "HISTOGRAM",
        process_resident_memory_bytes: "GAUGE",
        process_heap_used_bytes: "GAUGE",
        process_cpu_seconds_total: "COUNTER",
        process_uptime_seconds: "GAUGE"
      })
      for (const f of families.filter((f) => !f.name.startsWith("effect_"))) expect(f.help, f.name).not.toBe("")
      const outcomes = family(families, "cache_operations_total").metrics.map((m) => m.labels?.outcome)
      expect(new Set(outcomes)).toEqual(new Set(["hit", "miss", "set", "delete", "error", "skipped"]))
      const request = family(families, "http_requests_total").metrics.find(
        (m) => m.labels?.route === "/api/v1/products" && m.labels.method === "POST" && m.labels.status === "201"
      )
      expect(request).toBeDefined()
      // The parser flattens a labelled histogram into one (a prom2json limitation): its series are read as text.
      const histogram = histogramSeries(text, "http_request_duration_seconds", 'route="/api/v1/products/:id"')
      expect(histogram.count).toBeGreaterThan(0)
      expect(histogram.buckets.at(-1)).toEqual(["+Inf", histogram.count])
      const counts = histogram.buckets.map(([, count]) => count)
      expect(counts).toEqual([...counts].sort((a, b) => a - b))
      expect(valueOf(families, "db_queries_total", { query: "findById", outcome: "ok" })).toBeGreaterThan(0)
      expect(valueOf(families, "process_resident_memory_bytes")).toBeGreaterThan(1_000_000)
      expect(valueOf(families, "process_cpu_seconds_total")).toBeGreaterThan(0)
    }).pipe(Effect.provide(observedApp()))
  )

  it.live("a miss then a hit move lookup miss and hit by exactly one each, as the stats endpoint does", () =>
    Effect.gen(function* () {
      const app = yield* App
      const created = yield* app.request("POST", products, { json: laptop })
      const path = `${products}/${created.body.product.id}`
      const before = (yield* scrape).families
      const statsBefore = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
      expect((yield* app.get(path)).headers.get("x-cache")).toBe("MISS")
      const between = (yield* scrape).families
      expect(cacheOps(between, "lookup", "miss") - cacheOps(before, "lookup", "miss")).toBe(1)
      expect(cacheOps(between, "lookup", "hit") - cacheOps(before, "lookup", "hit")).toBe(0)
      expect(cacheOps(between, "fill", "set") - cacheOps(before, "fill", "set")).toBe(1)
      expect((yield* app.get(path)).headers.get("x-cache")).toBe("HIT")
      const after = (yield* scrape).families
      expect(cacheOps(after, "lookup", "hit") - cacheOps(between, "lookup", "hit")).toBe(1)
      expect(cacheOps(after, "lookup", "miss") - cacheOps(between, "lookup", "miss")).toBe(0)
      const statsAfter = (yield* app.get("/api/v1/cache/stats")).body.cache_stats
      expect(statsAfter.hits - statsBefore.hits).toBe(
        cacheOps(after, "lookup", "hit") - cacheOps(before, "lookup", "hit")
      )
      expect(statsAfter.misses - statsBefore.misses).toBe(
        cacheOps(after, "lookup", "miss") - cacheOps(before, "lookup", "miss")
      )
      // A reset zeroes the endpoint's numbers; the Prometheus counters only ever grow.
      yield* app.request("POST", "/api/v1/cache/stats/reset")
      expect(cacheOps((yield* scrape).families, "lookup", "hit")).toBe(cacheOps(after, "lookup", "hit"))
    }).pipe(Effect.provide(observedApp()))
  )

  it.live("route labels are templates; unknown paths are `unmatched`; the raw path never shows", () =>
    Effect.gen(function* () {
      const app = yield* App
      const before = (yield* scrape).families
      yield* app.get(`${products}/987654321`)
      yield* app.get(`${products}/987654321/`)
      yield* app.get("/no/such/path/4242")
      yield* app.request("PATCH", `${products}/987654321`)
      const patched = { route: "/api/v1/products/:id", method: "PATCH", status: "405" }
      const { families, text } = yield* scrapeUntil(
        (families) =>
          valueOf(families, "http_requests_total", patched) > valueOf(before, "http_requests_total", patched)
      )
      const delta = (labels: Record<string, string>) =>
        valueOf(families, "http_requests_total", labels) - valueOf(before, "http_requests_total", labels)
      expect(delta({ route: "/api/v1/products/:id", method: "GET", status: "404" })).toBe(2)
      expect(delta({ route: "unmatched", method: "GET", status: "404" })).toBe(1)
      expect(delta({ route: "/api/v1/products/:id", method: "PATCH", status: "405" })).toBe(1)
      expect(text).not.toContain("987654321")
      expect(text).not.toContain("4242")
    }).pipe(Effect.provide(observedApp()))
  )

  it.live("concurrent misses of one key share one database load; the others count as coalesced", () =>
    Effect.gen(function* () {
      const service = yield* ProductService
      const created = yield* service.create(laptop)
      const before = parsePrometheus(yield* PrometheusText.scrape)
      const reads = yield* Effect.all(
        Array.from({ length: 20 }, () => service.getById(created.id)),
        {
          concurrency: "unbounded"
        }
      )
      const after = parsePrometheus(yield* PrometheusText.scrape)
      const delta = (name: string, labels?: Record<string, string>) =>
        valueOf(after, name, labels) - valueOf(before, name, labels)
      expect(reads.every((read) => !read.fromCache)).toBe(true)
      expect(delta("db_queries_total", { query: "findById", outcome: "ok" })).toBe(1)
      expect(delta("cache_coalesced_loads_total")).toBe(19)
    }).pipe(
      Effect.provide(
        TestApp.layer({
          cache: MemoryLive,
          // Slow enough that every reader misses before the first load is back.
          repo: (repo) => ({ ...repo, findById: (id) => Effect.delay(repo.findById(id), "50 millis") }) as typeof repo
        })
      )
    )
  )

  it.effect("a failed cache operation counts as error, one refused by the open circuit as skipped", () =>
    Effect.gen(function* () {
      const memory = yield* Effect.map(Layer.build(MemoryCache.layer), Context.get(Cache))
      const switchable = makeSwitchableCache(memory, true)
      const breaker = CircuitBreaker.make(switchable.cache, { ...CircuitBreaker.defaults, failureThreshold: 2 })
      const cache = breaker.cache
      const stats = yield* CacheStats
      const slot = { key: "k", guard: "g", lease: "l", shadow: "s" }
      const read = (families: ReadonlyArray<Family>) => ({
        error: cacheOps(families, "lookup", "error"),
        skipped: cacheOps(families, "lookup", "skipped")
      })
      const before = read(parsePrometheus(yield* PrometheusText.scrape))
      for (let i = 0; i < 3; i++) yield* cache.lookup(slot).pipe(Effect.catchAll(stats.error))
      expect(breaker.state()).toBe("open")
      const after = read(parsePrometheus(yield* PrometheusText.scrape))
      expect({ error: after.error - before.error, skipped: after.skipped - before.skipped }).toEqual({
        error: 2,
        skipped: 1
      })
      expect((yield* stats.snapshot).errors).toBe(3)
    }).pipe(Effect.scoped, Effect.provide(CacheStats.Default))
  )
})

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

  it.scopedLive("a database failure is logged naming the request, on the lean path and on the HttpApi route", () =>
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

  // The lean path with tracing on: each read runs alone (no batch), under a server span of its own.
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

describe("LOG_FORMAT and LOG_LEVEL", () => {
  const read = <A>(config: Effect.Effect<A, unknown>, env: Record<string, string>) =>
    Effect.exit(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(env)))))

  it.effect("LOG_FORMAT is json or pretty; JSON by default when stdout is not a terminal", () =>
    Effect.gen(function* () {
      expect(yield* read(AppConfig.logFormat, { LOG_FORMAT: "pretty" })).toEqual(Exit.succeed("pretty"))
      expect(yield* read(AppConfig.logFormat, { LOG_FORMAT: "json" })).toEqual(Exit.succeed("json"))
      expect(yield* read(AppConfig.logFormat, {})).toEqual(Exit.succeed(process.stdout.isTTY ? "pretty" : "json"))
      const bad = yield* read(AppConfig.logFormat, { LOG_FORMAT: "xml" })
      expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/LOG_FORMAT/)
    })
  )

  it.effect("LOG_LEVEL takes a level name in any case, info by default, and names itself when wrong", () =>
    Effect.gen(function* () {
      expect(yield* read(AppConfig.logLevel, {})).toEqual(Exit.succeed(LogLevel.Info))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "DEBUG" })).toEqual(Exit.succeed(LogLevel.Debug))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "warn" })).toEqual(Exit.succeed(LogLevel.Warning))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "warning" })).toEqual(Exit.succeed(LogLevel.Warning))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "off" })).toEqual(Exit.succeed(LogLevel.None))
      const bad = yield* read(AppConfig.logLevel, { LOG_LEVEL: "loud" })
      expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/LOG_LEVEL.*loud/)
      const all = yield* read(AppConfig.all, { LOG_LEVEL: "loud" })
      expect(Exit.isFailure(all)).toBe(true)
    })
  )

  it.effect("the Logging layer sets the minimum level and the one logger LOG_FORMAT names", () =>
    Effect.gen(function* () {
      expect((yield* FiberRef.get(FiberRef.currentMinimumLogLevel)).label).toBe("ERROR")
      const loggers = yield* FiberRef.get(FiberRef.currentLoggers)
      expect(loggers.pipe((set) => [...set].includes(Logger.defaultLogger))).toBe(false)
    }).pipe(
      Effect.provide(Logging.layer),
      Effect.withConfigProvider(
        ConfigProvider.fromMap(
          new Map([
            ["LOG_LEVEL", "error"],
            ["LOG_FORMAT", "json"]
          ])
        )
      )
    )
  )
})
