import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Activity from "../src/Dashboard/Activity.js"
import { eventWhere, openFeed } from "./support/EventFeed.js"
import type { FeedEvent } from "./support/EventFeed.js"
import { makeSwitchableCache } from "./support/Fakes.js"
import { Cache } from "../src/Cache.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import type { ProductRepo } from "../src/ProductRepo.js"
import { App, eventually, layer, memoryApp } from "./support/TestApp.js"

// The dashboard's page, files and feed over HTTP, in process; the browser tests (integration/DashboardBrowser) show
// them drawn.

const require = createRequire(import.meta.url)
const fresh = <A, E>(self: Effect.Effect<A, E, App>) => Effect.provide(self, memoryApp())
const portOf = (url: string) => Number(new URL(url).port)

describe("the dashboard page", () => {
  it.live("is HTML with a policy that allows this origin's scripts and styles only, and nosniff", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const page = yield* app.get("/dashboard")
        expect(page.status).toBe(200)
        expect(page.headers.get("content-type")).toBe("text/html; charset=utf-8")
        expect(page.headers.get("x-content-type-options")).toBe("nosniff")
        const policy = page.headers.get("content-security-policy") ?? ""
        expect(policy).toContain("default-src 'none'")
        expect(policy).toContain("script-src 'self';")
        expect(policy).toContain("style-src 'self';")
        expect(policy).toContain("connect-src 'self'")
        expect(policy).not.toMatch(/unsafe-inline|unsafe-eval|https?:/)
        // Nothing inline for the policy to refuse, and nothing from another origin.
        expect(page.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
        expect(page.text).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i)
        const references = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!)
        for (const reference of references) expect(reference).toMatch(/^(\/|data:,$)/)
      })
    )
  )

  it.live("serves its files with their types, uPlot byte for byte from the installed package", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        for (const [path, type] of [
          ["/dashboard/app.js", "text/javascript; charset=utf-8"],
          ["/dashboard/style.css", "text/css; charset=utf-8"],
          ["/dashboard/uPlot.min.js", "text/javascript; charset=utf-8"],
          ["/dashboard/uPlot.min.css", "text/css; charset=utf-8"]
        ] as const) {
          const reply = yield* app.get(path)
          expect(reply.status, path).toBe(200)
          expect(reply.headers.get("content-type"), path).toBe(type)
          expect(reply.headers.get("x-content-type-options"), path).toBe("nosniff")
        }
        const served = yield* app.get("/dashboard/uPlot.min.js")
        const installed = yield* Effect.promise(() =>
          Fs.readFile(require.resolve("uplot/dist/uPlot.iife.min.js"), "utf8")
        )
        expect(served.text).toBe(installed)
        expect((yield* app.get("/dashboard/nope.js")).status).toBe(404)
      })
    )
  )

  it.live("GET / sends a browser to the page; any other client still gets the contract's 404", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const browser = yield* Effect.promise(() =>
          fetch(app.url + "/", { headers: { accept: "text/html,application/xhtml+xml,*/*;q=0.8" }, redirect: "manual" })
        )
        expect(browser.status).toBe(302)
        expect(browser.headers.get("location")).toBe("/dashboard")
        const client = yield* app.get("/")
        expect(client.status).toBe(404)
        expect(client.body).toEqual({ error: "not_found", message: "no route for GET /" })
      })
    )
  )
})

describe("the event feed", () => {
  it.live("is text/event-stream; its first event has the counters, rates, latencies, health and recent requests", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const feed = yield* Effect.promise(() => openFeed(portOf(app.url)))
        expect(feed.status).toBe(200)
        expect(feed.headers["content-type"]).toBe("text/event-stream")
        expect(feed.headers["cache-control"]).toBe("no-store")
        expect(feed.headers["x-content-type-options"]).toBe("nosniff")
        const first = yield* Effect.promise(() => eventWhere(feed, () => true))
        expect(first.stats).toEqual({
          hits: 0,
          misses: 0,
          sets: 0,
          deletes: 0,
          errors: 0,
          hit_rate: 0,
          total_gets: 0,
          stale: 0
        })
        expect(first.rates).toEqual({ hit: 0, miss: 0, cache_error: 0, write: 0, http_error: 0 })
        expect(first.latency_ms).toEqual({ hit: null, miss: null })
        expect(first.health).toMatchObject({ status: "healthy", database: "up", cache: "up" })
        expect(["closed", "half-open", "open", null]).toContain(first.health.circuit)
        expect(first.recent).toEqual([])
        feed.close()
      })
    )
  )

  it.live("records nothing while nobody listens; shows requests once a feed is open; stops when it closes", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const created = yield* app.request("POST", "/api/v1/products", { json: { name: "Lamp", price: 5 } })
        const path = `/api/v1/products/${created.body.product.id}`
        yield* app.get(path)
        const unseen = "/api/v1/products/77777"
        yield* app.get(unseen)
        expect(Activity.recording.on).toBe(false)
        expect(Activity.totals().recent.map((r) => r.path)).not.toContain(unseen)

        const feed = yield* Effect.promise(() => openFeed(portOf(app.url)))
        yield* Effect.promise(() => eventWhere(feed, () => true))
        expect(Activity.recording.on).toBe(true)
        yield* app.get(path)
        yield* app.request("PUT", path, { json: { price: 6 } })
        yield* app.get(path)
        yield* app.get("/api/v1/products/x")
        const seen = yield* Effect.promise(() => eventWhere(feed, (event) => event.recent.length === 4))
        expect(seen.recent.map((r) => [r.method, r.path, r.status, r.x_cache, r.cache_error])).toEqual([
          ["GET", path, 200, "HIT", false],
          ["PUT", path, 200, null, false],
          ["GET", path, 200, "MISS", false],
          ["GET", "/api/v1/products/x", 400, null, false]
        ])
        const counted = { hit: 0, miss: 0, cache_error: 0, write: 0, http_error: 0 }
        for (const event of feed.events()) {
          for (const kind of ["hit", "miss", "cache_error", "write", "http_error"] as const) {
            counted[kind] += (event.rates[kind] * event.interval_ms) / 1000
          }
        }
        expect(Object.values(counted).map(Math.round)).toEqual([1, 1, 0, 1, 1])
        expect(seen.stats).toMatchObject({ hits: 1, misses: 3 })

        feed.close()
        expect(
          yield* eventually(
            Effect.sync(() => !Activity.recording.on),
            5_000
          )
        ).toBe(true)
      })
    )
  )

  it.live(
    "computes one event a tick for all its feeds: five feeds cost one health check (one database read) a tick",
    () => {
      let pings = 0
      const counted = (repo: ProductRepo) =>
        ({
          ...repo,
          ping: Effect.zipRight(
            Effect.sync(() => pings++),
            repo.ping
          )
        }) as typeof repo
      return Effect.gen(function* () {
        const app = yield* App
        const feeds = yield* Effect.promise(() =>
          Promise.all(Array.from({ length: 5 }, () => openFeed(portOf(app.url))))
        )
        for (const feed of feeds) yield* Effect.promise(() => eventWhere(feed, () => true))
        // From the event the first feed sees next until three ticks later, every feed being open throughout.
        const first = feeds[0]!
        const start = first.events().length
        yield* Effect.promise(() => eventWhere(first, () => first.events().length >= start + 1))
        const before = pings
        yield* Effect.promise(() => eventWhere(first, () => first.events().length >= start + 4))
        expect(pings - before).toBe(3)
        // Every feed got the same events: the ones the first feed got.
        const last = first.events().at(-1)!.at
        for (const feed of feeds) yield* Effect.promise(() => eventWhere(feed, (event) => event.at === last))
        for (const feed of feeds) feed.close()
      }).pipe(Effect.provide(layer({ cache: MemoryCache.layer, repo: counted })))
    }
  )

  it.live("beyond DASHBOARD_MAX_FEEDS open feeds, answers 503 with Retry-After and the contract's error body", () =>
    Effect.provide(
      Effect.gen(function* () {
        const app = yield* App
        const port = portOf(app.url)
        const open = yield* Effect.promise(() => Promise.all([openFeed(port), openFeed(port)]))
        expect(open.map((feed) => feed.status)).toEqual([200, 200])
        // Bounded: before the cap, this was one more feed that never ends.
        const refused = yield* Effect.promise(() =>
          fetch(app.url + "/api/v1/cache/events", { signal: AbortSignal.timeout(5_000) })
        )
        expect(refused.status).toBe(503)
        expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
        expect(refused.headers.get("content-type")).toBe("application/json")
        expect(yield* Effect.promise(() => refused.json())).toEqual({
          error: "unavailable",
          message: expect.stringContaining("2 dashboard feeds")
        })
        // A closed feed frees its place.
        open[0]!.close()
        const again = yield* eventually(
          Effect.promise(async () => {
            const feed = await openFeed(port)
            feed.close()
            return feed.status === 200
          }),
          5_000
        )
        expect(again).toBe(true)
        open[1]!.close()
      }),
      memoryApp({ DASHBOARD_MAX_FEEDS: "2" })
    )
  )

  it.live(
    "a read the cache failed is shown as a cache error on both request paths, though its X-Cache says MISS",
    () => {
      const cacheDown = Layer.effect(
        Cache,
        Effect.map(Cache, (memory) => makeSwitchableCache(memory, true).cache)
      ).pipe(Layer.provide(MemoryCache.layer))
      return Effect.gen(function* () {
        const app = yield* App
        const created = yield* app.request("POST", "/api/v1/products", { json: { name: "Lamp", price: 5 } })
        const feed = yield* Effect.promise(() => openFeed(portOf(app.url)))
        yield* Effect.promise(() => eventWhere(feed, () => true))
        // The fast path serves the canonical spelling, the HttpApi route any other.
        const lean = `/api/v1/products/${created.body.product.id}`
        const routed = "/api/v1/products?limit=5"
        // The ring of recent requests is the process's: earlier tests' requests are still in it.
        const since = Date.now()
        for (const path of [lean, routed]) expect((yield* app.get(path)).headers.get("x-cache")).toBe("MISS")
        const mine = (event: FeedEvent) => event.recent.filter((request) => request.at >= since)
        const seen = yield* Effect.promise(() => eventWhere(feed, (event) => mine(event).length === 2))
        expect(mine(seen).map((r) => [r.path, r.x_cache, r.cache_error])).toEqual([
          [lean, "MISS", true],
          [routed, "MISS", true]
        ])
        const counted = feed
          .events()
          .reduce((sum, event) => sum + (event.rates.cache_error * event.interval_ms) / 1000, 0)
        expect(Math.round(counted)).toBe(2)
        expect(feed.events().every((event) => event.rates.miss === 0)).toBe(true)
        feed.close()
      }).pipe(Effect.provide(layer({ cache: cacheDown })))
    }
  )

  it.live("is listed in the OpenAPI document as a read-only text/event-stream", () =>
    fresh(
      Effect.gen(function* () {
        const app = yield* App
        const document = (yield* app.get("/docs/openapi.json")).body
        const item = document.paths["/api/v1/cache/events"]
        expect(Object.keys(item)).toEqual(["get", "head"]) // HEAD is answered wherever GET is (issue 25)
        expect(Object.keys(item.get.responses["200"].content)).toEqual(["text/event-stream"])
        expect((yield* app.request("POST", "/api/v1/cache/events")).status).toBe(405)
      })
    )
  )
})

describe("Activity", () => {
  it("reads percentiles from its histogram within a bucket's width", () => {
    const buckets = new Array<number>(Activity.bucketCount).fill(0)
    for (let ms = 1; ms <= 100; ms++) buckets[Activity.bucketOf(ms)]!++
    expect(Activity.quantile(buckets, 0.5)! / 50).toBeCloseTo(1, 0)
    expect(Math.abs(Activity.quantile(buckets, 0.5)! - 50) / 50).toBeLessThan(0.1)
    expect(Math.abs(Activity.quantile(buckets, 0.99)! - 99) / 99).toBeLessThan(0.1)
    expect(Activity.quantile(new Array<number>(Activity.bucketCount).fill(0), 0.5)).toBeNull()
    expect(Activity.bucketOf(0)).toBe(0)
    expect(Activity.bucketOf(1e9)).toBe(Activity.bucketCount - 1)
  })

  it("counts each answer as one kind", () => {
    expect(Activity.kindOf("GET", 200, "HIT")).toBe("hit")
    expect(Activity.kindOf("GET", 200, "MISS")).toBe("miss")
    expect(Activity.kindOf("PUT", 200, undefined)).toBe("write")
    expect(Activity.kindOf("DELETE", 404, undefined)).toBe("http_error")
    expect(Activity.kindOf("GET", 404, undefined)).toBe("other")
    expect(Activity.kindOf("GET", 400, undefined)).toBe("http_error")
    expect(Activity.kindOf("GET", 503, "MISS")).toBe("http_error")
    expect(Activity.kindOf("GET", 200, undefined)).toBe("other")
    // A read the cache failed is a cache error, not a miss; an answer that failed is an HTTP error first.
    expect(Activity.kindOf("GET", 200, "MISS", true)).toBe("cache_error")
    expect(Activity.kindOf("GET", 503, undefined, true)).toBe("http_error")
  })

  it("sums workers' totals and takes differences that never go negative", () => {
    const a = Activity.emptyTotals()
    const b = Activity.emptyTotals()
    a.counts.hit = 3
    b.counts.hit = 2
    ;(a.hitBuckets as Array<number>)[5] = 3
    ;(b.hitBuckets as Array<number>)[5] = 2
    const entry = (at: number) => ({
      at,
      method: "GET",
      path: "/",
      status: 200,
      x_cache: null,
      cache_error: false,
      duration_ms: 1
    })
    const both = Activity.sum([
      { ...a, recent: [entry(1), entry(3)] },
      { ...b, recent: [entry(2)] }
    ])
    expect(both.counts.hit).toBe(5)
    expect(both.hitBuckets[5]).toBe(5)
    expect(both.recent.map((r) => r.at)).toEqual([1, 2, 3])
    // A replaced worker starts from zero: the difference is zero, not negative.
    expect(Activity.since(both, a).counts.hit).toBe(0)
    expect(Activity.since(a, both).counts.hit).toBe(2)
  })
})
