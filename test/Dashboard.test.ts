import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import * as Activity from "../src/Dashboard/Activity.js"
import { eventWhere, openFeed } from "./support/EventFeed.js"
import { App, eventually, memoryApp } from "./support/TestApp.js"

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
        expect(first.rates).toEqual({ hit: 0, miss: 0, write: 0, error: 0 })
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
        expect(seen.recent.map((r) => [r.method, r.path, r.status, r.x_cache])).toEqual([
          ["GET", path, 200, "HIT"],
          ["PUT", path, 200, null],
          ["GET", path, 200, "MISS"],
          ["GET", "/api/v1/products/x", 400, null]
        ])
        const counted = { hit: 0, miss: 0, write: 0, error: 0 }
        for (const event of feed.events()) {
          for (const kind of ["hit", "miss", "write", "error"] as const) {
            counted[kind] += (event.rates[kind] * event.interval_ms) / 1000
          }
        }
        expect(Object.values(counted).map(Math.round)).toEqual([1, 1, 1, 1])
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
    expect(Activity.kindOf("DELETE", 404, undefined)).toBe("error")
    expect(Activity.kindOf("GET", 404, undefined)).toBe("other")
    expect(Activity.kindOf("GET", 400, undefined)).toBe("error")
    expect(Activity.kindOf("GET", 503, "MISS")).toBe("error")
    expect(Activity.kindOf("GET", 200, undefined)).toBe("other")
  })

  it("sums workers' totals and takes differences that never go negative", () => {
    const a = Activity.emptyTotals()
    const b = Activity.emptyTotals()
    a.counts.hit = 3
    b.counts.hit = 2
    ;(a.hitBuckets as Array<number>)[5] = 3
    ;(b.hitBuckets as Array<number>)[5] = 2
    const entry = (at: number) => ({ at, method: "GET", path: "/", status: 200, x_cache: null, duration_ms: 1 })
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
