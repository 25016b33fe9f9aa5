import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import parsePrometheus from "parse-prometheus-text-format"
import type { Family } from "parse-prometheus-text-format"
import { Cache } from "../src/Cache.js"
import * as CircuitBreaker from "../src/Cache/CircuitBreaker.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import { MemoryLive } from "../src/Services.js"
import { CacheStats } from "../src/Cache/Stats.js"
import * as PrometheusText from "../src/Metrics/PrometheusText.js"
import { ProductService } from "../src/ProductService.js"
import { makeSwitchableCache } from "./support/Fakes.js"
import * as TestApp from "./support/TestApp.js"
import { products, laptop } from "./support/HttpClient.js"
import { App, observedApp } from "./support/TestApp.js"

// Metrics live in Effect's process-wide registry and other tests move them too: every count is read before and
// after, never assumed to start at zero.

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
      // Only label sets are searched: a sample value such as the uptime can hold these digits by chance.
      const labelSets = text.match(/\{[^}]*\}/g) ?? []
      expect(labelSets.length).toBeGreaterThan(0)
      expect(labelSets.filter((labels) => labels.includes("987654321") || labels.includes("4242"))).toEqual([])
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
