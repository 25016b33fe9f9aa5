import { Effect, Metric, MetricBoundaries, MetricLabel } from "effect"

// Every metric the service exports, as module-level constants in Effect's global registry (Metrics/PrometheusText.ts
// renders them). The registry is process-global: several app instances in one process share these series.
//
// Hot-path updates go through `unsafeUpdate` with a label array built once per series: Effect caches a metric's
// hook by the identity of that array, so an update is a WeakMap hit and an add, never a key hashed anew.

export type Labels = ReadonlyArray<MetricLabel.MetricLabel>

export const labels = (entries: Record<string, string>): Labels =>
  Object.entries(entries).map(([key, value]) => MetricLabel.make(key, value))

export const noLabels: Labels = []

const seconds = MetricBoundaries.fromIterable([
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
])

export const httpRequests = Metric.counter("http_requests_total", {
  description: "HTTP requests answered, by route template, method and status"
})

export const httpRequestDuration = Metric.histogram(
  "http_request_duration_seconds",
  seconds,
  "Time from receiving a request to having written its answer, by route template"
)

export const httpRequestsActive = Metric.gauge("http_requests_active", {
  description: "Requests received and not yet answered or abandoned: it falls back to zero when the service is idle"
})

export const httpClientErrors = Metric.counter("http_client_errors_total", {
  description: "Requests Node refused before the app saw them, by the error answered (connection_error: none could be)"
})

export const httpDroppedConnections = Metric.counter("http_dropped_connections_total", {
  description: "Connections closed on arrival because MAX_CONNECTIONS were open"
})

export const cacheOperations = Metric.counter("cache_operations_total", {
  description:
    "Cache operations by operation and outcome, counted with the /api/v1/cache/stats numbers; delete counts keys removed"
})

export const cacheCoalescedLoads = Metric.counter("cache_coalesced_loads_total", {
  description:
    "Reads that joined another reader's database load instead of starting their own: misses, and reads that bypass an unreachable cache"
})

export const cacheRefreshes = Metric.counter("cache_refreshes_total", {
  description: "Background reloads of a hot entry shortly before it expired (refresh ahead, XFetch)"
})

export const cacheCircuitState = Metric.gauge("cache_circuit_state", {
  description: "The cache circuit breaker: 0 closed, 1 half-open, 2 open"
})

export const cacheTopology = Metric.gauge("cache_topology", {
  description: "1 for the Redis topology in use: single, sentinel or cluster"
})

export const cacheMasters = Metric.gauge("cache_masters", {
  description: "A Redis Cluster's masters: total, and answering (their connection ready)"
})

export const dbQueries = Metric.counter("db_queries_total", {
  description: "Database queries by query name and outcome (ok, error)"
})

export const dbQueryDuration = Metric.histogram(
  "db_query_duration_seconds",
  seconds,
  "Database query time by query name"
)

export const dbBusyRetries = Metric.counter("db_busy_retries_total", {
  description: "Database statements run again because another connection held the lock (SQLITE_BUSY, SQLITE_LOCKED)"
})

export const dbCommits = Metric.counter("db_commits_total", {
  description:
    "Transactions committed by the service's writes on SQLite: the writes of one turn of the event loop share one"
})

export const processResidentMemory = Metric.gauge("process_resident_memory_bytes", {
  description: "Resident memory size in bytes"
})

export const processHeapUsed = Metric.gauge("process_heap_used_bytes", { description: "V8 heap in use, in bytes" })

export const processCpuSeconds = Metric.counter("process_cpu_seconds_total", {
  description: "User and system CPU time spent, in seconds"
})

export const processUptime = Metric.gauge("process_uptime_seconds", {
  description: "Seconds since the process started"
})

// Registered up front so a scrape shows every family, at zero, before the first request (the cache's series with
// its counters, Cache/Stats.ts).
for (const metric of [
  cacheCoalescedLoads,
  cacheRefreshes,
  cacheCircuitState,
  dbBusyRetries,
  httpRequestsActive,
  httpDroppedConnections,
  processCpuSeconds
]) {
  metric.unsafeValue(noLabels)
}

const querySeries = new Map<string, { readonly ok: Labels; readonly error: Labels; readonly duration: Labels }>()

const seriesOfQuery = (query: string) => {
  let series = querySeries.get(query)
  if (series === undefined) {
    series = {
      ok: labels({ query, outcome: "ok" }),
      error: labels({ query, outcome: "error" }),
      duration: labels({ query })
    }
    querySeries.set(query, series)
  }
  return series
}

/** Counts and times a database query under `query` (a fixed name, never SQL text: it is a label). */
export const trackQuery =
  (query: string) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.suspend(() => {
      const started = performance.now()
      return Effect.onExit(effect, (exit) =>
        Effect.sync(() => {
          const series = seriesOfQuery(query)
          dbQueries.unsafeUpdate(1, exit._tag === "Success" ? series.ok : series.error)
          dbQueryDuration.unsafeUpdate((performance.now() - started) / 1000, series.duration)
        })
      )
    })

// The CPU counter must only grow; it is advanced to the process's own total at each scrape.
let cpuSecondsRecorded = 0

/** Requests in progress: counted in by the dispatcher (Http/Server.ts), out on `close`; read into `http_requests_active` at scrape time. */
export const activeRequests = { count: 0 }

/** Reads the process figures into their gauges; called at scrape time, so they cost nothing between scrapes. */
export const sampleProcess = Effect.sync(() => {
  httpRequestsActive.unsafeUpdate(activeRequests.count, noLabels)
  const memory = process.memoryUsage()
  processResidentMemory.unsafeUpdate(memory.rss, noLabels)
  processHeapUsed.unsafeUpdate(memory.heapUsed, noLabels)
  processUptime.unsafeUpdate(process.uptime(), noLabels)
  const cpu = process.cpuUsage()
  const cpuSeconds = (cpu.user + cpu.system) / 1e6
  if (cpuSeconds > cpuSecondsRecorded) {
    processCpuSeconds.unsafeUpdate(cpuSeconds - cpuSecondsRecorded, noLabels)
    cpuSecondsRecorded = cpuSeconds
  }
})
