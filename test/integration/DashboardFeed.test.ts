import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { eventWhere, openFeed } from "../support/EventFeed.js"
import * as RedisServer from "../support/RedisServer.js"
import { awaitExit, boundWithStart, call, startService } from "../support/ServiceProcess.js"

// The dashboard's feed in the real process: it must not hold up a shutdown, and under WORKERS=N it reports every
// worker's requests.

describe("the dashboard's event feed (real process)", () => {
  it.scopedLive(
    "SIGTERM with two feeds open: both end cleanly and the service exits 0 well within the drain's grace",
    () =>
      Effect.gen(function* () {
        const service = yield* startService()
        const feeds = yield* Effect.promise(() => Promise.all([openFeed(service.port), openFeed(service.port)]))
        for (const feed of feeds) yield* Effect.promise(() => eventWhere(feed, () => true))
        const signalled = performance.now()
        service.child.kill("SIGTERM")
        const exit = yield* awaitExit(service, 5_000)
        expect(exit.code).toBe(0)
        // The drain gives open answers 8 s before it cuts them: a feed it had to cut would take that long.
        expect(exit.at - signalled).toBeLessThan(3_000)
        for (const feed of feeds) {
          const ended = yield* Effect.promise(() => feed.ended)
          expect(ended.clean, "the feed's body ended with its last chunk, not cut").toBe(true)
        }
      }),
    boundWithStart(30_000)
  )

  it.scopedLive(
    "WORKERS=2: one feed shows the requests both workers answered, and the summed counters",
    () =>
      Effect.gen(function* () {
        const redis = yield* RedisServer.make()
        const service = yield* startService({ env: { REDIS_URL: redis.url, WORKERS: "2" } })
        // Both workers listening: the second one logs its address too.
        const deadline = performance.now() + 20_000
        while (service.output().split("Listening on").length - 1 < 2 && performance.now() < deadline) {
          yield* Effect.sleep("100 millis")
        }
        const created = yield* call(service.port, "POST", "/api/v1/products", { json: { name: "Lamp", price: 5 } })
        const path = `/api/v1/products/${created.body.product.id}`
        const feed = yield* Effect.promise(() => openFeed(service.port))
        yield* Effect.promise(() => eventWhere(feed, () => true))
        // A fresh connection each: the primary hands connections to the workers in turn.
        const reads = []
        for (let i = 0; i < 8; i++) reads.push(yield* call(service.port, "GET", path))
        const servedBy = new Set(reads.map((read) => String(read.headers["x-request-id"]).split("-")[0]))
        expect(servedBy.size).toBe(2)
        const event = yield* Effect.promise(() =>
          eventWhere(feed, (event) => event.recent.filter((request) => request.path === path).length === 8)
        )
        expect(event.recent.filter((request) => request.path === path).map((request) => request.x_cache)).toEqual([
          "MISS",
          ...Array(7).fill("HIT")
        ])
        expect(event.stats).toMatchObject({ hits: 7, misses: 1, total_gets: 8 })
        const counted = feed
          .events()
          .reduce((sum, event) => sum + ((event.rates.hit + event.rates.miss) * event.interval_ms) / 1000, 0)
        expect(Math.round(counted)).toBe(8)
        feed.close()
      }),
    boundWithStart(60_000)
  )
})
