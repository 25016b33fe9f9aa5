import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { Api } from "../Api.js"
import { CacheStats } from "../Cache/Stats.js"
import type { CacheStatsSnapshot } from "../Cache/Stats.js"
import * as PrometheusText from "../Metrics/PrometheusText.js"
import { json, timestamp } from "./Responses.js"

const statsBody = (stats: CacheStatsSnapshot) => ({
  hits: stats.hits,
  misses: stats.misses,
  sets: stats.sets,
  deletes: stats.deletes,
  errors: stats.errors,
  hit_rate: stats.hit_rate,
  total_gets: stats.total_gets,
  stale: stats.stale
})

/** The contract's counters: GET /api/v1/cache/stats and its reset. */
export const StatsLive = HttpApiBuilder.group(Api, "cache", (handlers) =>
  Effect.gen(function* () {
    const stats = yield* CacheStats
    return handlers
      .handle("stats", () =>
        Effect.map(Effect.zip(stats.snapshot, timestamp), ([snapshot, at]) =>
          json(JSON.stringify({ cache_stats: statsBody(snapshot), timestamp: at }))
        )
      )
      .handle("reset", () =>
        Effect.map(Effect.zip(stats.reset, timestamp), ([snapshot, at]) =>
          json(JSON.stringify({ message: "Cache statistics reset", cache_stats: statsBody(snapshot), timestamp: at }))
        )
      )
  })
)

/** Every metric, in Prometheus text format. */
export const MetricsLive = HttpApiBuilder.group(Api, "metrics", (handlers) =>
  handlers.handle("metrics", () =>
    Effect.map(PrometheusText.scrape, (body) =>
      HttpServerResponse.text(body, { contentType: PrometheusText.contentType })
    )
  )
)
