import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Deferred, Effect, Queue, Stream } from "effect"
import { Api } from "../Api.js"
import * as AppConfig from "../AppConfig.js"
import { CacheStats } from "../Cache/Stats.js"
import * as Cluster from "../Cluster.js"
import { Draining } from "../Http/GracefulServer.js"
import * as HealthCheck from "../Http/HealthCheck.js"
import type { HealthReport } from "../Http/HealthCheck.js"
import { cacheCircuitState, noLabels } from "../Metrics.js"
import * as Activity from "./Activity.js"

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

/**
 * GET /api/v1/cache/events: Server-Sent Events for the dashboard. Each open feed keeps the totals it last sent and
 * reports the difference, so any number of feeds can watch at their own pace. Recording (Activity) runs only while
 * a feed is open; a drain (SIGTERM) ends every feed at once, so a shutdown never waits on them.
 */
export const FeedLive = HttpApiBuilder.group(Api, "dashboard", (handlers) =>
  Effect.gen(function* () {
    const stats = yield* CacheStats
    const health = yield* HealthCheck.make
    const onDrain = yield* Draining
    const memoryBackend = (yield* AppConfig.cacheBackend) === "memory"

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

    const feed = Stream.unwrapScoped(
      Effect.gen(function* () {
        yield* Effect.acquireRelease(Effect.sync(Activity.listen), (stop) => Effect.sync(stop))
        const stopped = yield* Deferred.make<void>()
        yield* Effect.acquireRelease(
          Effect.sync(() => onDrain(() => Deferred.unsafeDone(stopped, Effect.void))),
          (forget) => Effect.sync(forget)
        )
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
              write: perSecond(delta.counts.write, seconds),
              error: perSecond(delta.counts.error, seconds)
            },
            latency_ms: { hit: latency(delta.hitBuckets), miss: latency(delta.missBuckets) },
            health: healthOf(report),
            recent: delta.recent
          }
          return `data: ${JSON.stringify(body)}\n\n`
        })
        const wait = Effect.raceFirst(
          Effect.sleep(tickMillis),
          Effect.zipRight(Queue.take(changed), Effect.sleep(soonestMillis))
        )
        // A reconnecting EventSource waits `retry` ms: long enough not to hammer a service that is restarting.
        return Stream.make("retry: 2000\n\n").pipe(
          Stream.concat(Stream.fromEffect(event)),
          Stream.concat(Stream.repeatEffect(Effect.zipRight(wait, event))),
          Stream.interruptWhen(Deferred.await(stopped)),
          Stream.encodeText
        )
      })
    )

    return handlers.handle("events", () =>
      Effect.succeed(
        HttpServerResponse.stream(feed, {
          contentType: "text/event-stream",
          headers: { "cache-control": "no-store", "x-accel-buffering": "no" }
        })
      )
    )
  })
)
