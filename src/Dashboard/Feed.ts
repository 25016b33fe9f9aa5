import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Deferred, Effect, Queue, Stream } from "effect"
import { Api } from "../Api.js"
import * as AppConfig from "../AppConfig.js"
import { CacheStats } from "../Cache/Stats.js"
import * as Cluster from "../Cluster.js"
import { errorResponse } from "../Http/ErrorResponse.js"
import { Draining } from "../Http/GracefulServer.js"
import * as HealthCheck from "../Health.js"
import type { HealthReport } from "../Health.js"
import { cacheCircuitState, noLabels } from "../Metrics.js"
import * as Activity from "./Activity.js"
import * as Broadcast from "./Broadcast.js"

const circuitStates = ["closed", "half-open", "open"] as const

const gatherTopic = "dashboard-activity"

const latency = (buckets: ReadonlyArray<number>) => {
  let count = 0
  for (const n of buckets) count += n
  if (count === 0) return null
  const round = (ms: number | null) => (ms === null ? null : Math.round(ms * 1000) / 1000)
  return { p50: round(Activity.quantile(buckets, 0.5)), p99: round(Activity.quantile(buckets, 0.99)), count }
}

const perSecond = (count: number, seconds: number) => Math.round((count / seconds) * 100) / 100

// One event a second, or this long after a request that changed something, whichever comes first.
const tickMillis = 1_000
const soonestMillis = 200

// A refused dashboard is asked to come back after a few of its own ticks.
const retryAfterSeconds = 10

const encoder = new TextEncoder()

/**
 * GET /api/v1/cache/events: Server-Sent Events for the dashboard. One producer per process computes each event (the
 * difference since the last one) and every open feed sends the same bytes; at most DASHBOARD_MAX_FEEDS feeds are
 * open at once. Recording (Activity) runs only while a feed is open; a drain (SIGTERM) ends every feed at once, so
 * a shutdown never waits on them.
 */
export const FeedLive = HttpApiBuilder.group(Api, "dashboard", (handlers) =>
  Effect.gen(function* () {
    const stats = yield* CacheStats
    const health = yield* HealthCheck.make
    const onDrain = yield* Draining
    const memoryBackend = (yield* AppConfig.cacheBackend) === "memory"
    const maxFeeds = yield* AppConfig.dashboardMaxFeeds

    // Under WORKERS=N the worker holding the feed collects every worker's totals, as the stats endpoint does.
    Cluster.answerGathers(gatherTopic, () => {
      Activity.collectedRemotely()
      return Activity.totals()
    })
    const totals = Cluster.isWorker()
      ? Cluster.gather(gatherTopic).pipe(
          Effect.timeout("2 seconds"),
          Effect.map((parts) => Activity.sum(parts as ReadonlyArray<Activity.Totals>)),
          Effect.orElseSucceed(Activity.totals)
        )
      : Effect.sync(Activity.totals)

    const circuit = () =>
      memoryBackend ? null : (circuitStates[cacheCircuitState.unsafeValue(noLabels).value] ?? "closed")

    const healthOf = (report: HealthReport) => ({
      status: report.status,
      database: report.database,
      cache: report.cache,
      circuit: circuit(),
      ...(report.writes === "ok" ? {} : { database_writes: report.writes })
    })

    // One event a tick for every feed of this process: the health check (a database read and a Redis PING), the
    // stats and the JSON are computed once, not once per feed.
    const produce = (publish: (message: Uint8Array) => void) =>
      Effect.gen(function* () {
        yield* Effect.acquireRelease(Effect.sync(Activity.listen), (stop) => Effect.sync(stop))
        const changed = yield* Queue.sliding<void>(1)
        yield* Effect.acquireRelease(
          Effect.sync(() => Activity.onChange(() => Queue.unsafeOffer(changed, undefined))),
          (forget) => Effect.sync(forget)
        )
        let previous = yield* totals
        let previousAt = Date.now()
        const event = Effect.gen(function* () {
          const [now, snapshot, report] = yield* Effect.all([totals, stats.snapshot, health], {
            concurrency: "unbounded"
          })
          const at = Date.now()
          const seconds = Math.max(0.001, (at - previousAt) / 1000)
          const delta = Activity.since(previous, now)
          previous = now
          previousAt = at
          const body = {
            at: new Date(at).toISOString(),
            interval_ms: Math.round(seconds * 1000),
            stats: snapshot,
            rates: {
              hit: perSecond(delta.counts.hit, seconds),
              miss: perSecond(delta.counts.miss, seconds),
              cache_error: perSecond(delta.counts.cache_error, seconds),
              write: perSecond(delta.counts.write, seconds),
              http_error: perSecond(delta.counts.http_error, seconds)
            },
            latency_ms: { hit: latency(delta.hitBuckets), miss: latency(delta.missBuckets) },
            health: healthOf(report),
            recent: delta.recent
          }
          publish(encoder.encode(`data: ${JSON.stringify(body)}\n\n`))
        })
        const wait = Effect.raceFirst(
          Effect.sleep(tickMillis),
          Effect.zipRight(Queue.take(changed), Effect.sleep(soonestMillis))
        )
        yield* event
        return yield* Effect.forever(Effect.zipRight(wait, event))
      }).pipe(Effect.scoped)

    const broadcast = yield* Broadcast.make(produce)
    const drained = yield* Deferred.make<void>()
    onDrain(() => Deferred.unsafeDone(drained, Effect.void))

    const feed = Stream.unwrapScoped(
      Effect.map(broadcast.subscribe, (events) =>
        // A reconnecting EventSource waits `retry` ms: long enough not to hammer a service that is restarting.
        Stream.make(encoder.encode("retry: 2000\n\n")).pipe(
          Stream.concat(Stream.fromQueue(events)),
          Stream.interruptWhen(Deferred.await(drained))
        )
      )
    )

    // Counted from the answer's start to its connection's close, whichever way it ends: a feed's place is taken before
    // its stream begins (the 503 must be decided first) and must be given back even if that stream never runs.
    let open = 0
    const full = () =>
      errorResponse(503, "unavailable", `${maxFeeds} dashboard feeds are open in this process, try again later`, {
        "retry-after": String(retryAfterSeconds)
      })

    return handlers.handle("events", () =>
      Effect.map(HttpServerRequest.HttpServerRequest, (request) => {
        if (open >= maxFeeds) return full()
        open++
        NodeHttpServerRequest.toServerResponse(request).once("close", () => open--)
        return HttpServerResponse.stream(feed, {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
        })
      })
    )
  })
)
