// Two measurements of what the cache does rather than how fast: refresh ahead (misses per expiry of a hot key read at
// a steady rate, with CACHE_REFRESH_AHEAD off and on) and batched misses (database queries per miss when misses for
// distinct ids arrive together). Each reads the service's own counters: /api/v1/cache/stats and /metrics.
import { expectOk, scrapeCounter } from "./http.mjs"
import { pad } from "./report.mjs"
import { readStats, resetStats } from "./scenarios.mjs"
import { runWrk } from "./wrk.mjs"

const ttlSeconds = 2
const hotConns = 10

const loadQueries = async (port) =>
  (await scrapeCounter(port, "db_queries_total", { query: "findById" })) +
  (await scrapeCounter(port, "db_queries_total", { query: "findByIds" }))

/**
 * A hot key read by wrk (10 connections, as fast as they go: a steady rate) on two instances with CACHE_TTL=2s, one
 * without refresh ahead and one with it. Each expiry of the entry is a miss for every read that arrives while it is
 * reloaded (they share one load); refresh ahead reloads it before it expires.
 */
export const runRefreshAhead = async (targets, { rounds, smoke }) => {
  const seconds = smoke ? 3 : 10
  const results = []
  for (let round = 1; round <= rounds; round++) {
    for (const target of [targets.aheadOff, targets.aheadOn]) {
      await expectOk(target.port, "GET", "/api/v1/products/1")
      await resetStats(target)
      const refreshes0 = await scrapeCounter(target.port, "cache_refreshes_total", {})
      const loads0 = await loadQueries(target.port)
      const wrk = await runWrk({ port: target.port, script: "hot.lua", conns: hotConns, duration: seconds })
      const stats = await readStats(target)
      const expiries = seconds / ttlSeconds
      results.push({
        target: target.display,
        round,
        seconds,
        conns: hotConns,
        rps: Math.round(wrk.rps),
        requests: wrk.requests,
        non2xx: wrk.non2xx,
        misses: stats.misses,
        expiries,
        misses_per_expiry: Math.round((stats.misses / expiries) * 100) / 100,
        refreshes: (await scrapeCounter(target.port, "cache_refreshes_total", {})) - refreshes0,
        db_loads: (await loadQueries(target.port)) - loads0
      })
    }
  }
  return results
}

/**
 * The miss scenario (CACHE_TTL=1ms, random ids over 1..1000, 50 connections): database queries per miss. The service
 * loads the misses of one event-loop turn in one query; the baseline, like the service before, one query per miss.
 */
export const runBatchedMiss = async (targets, { rounds, seconds }) => {
  const results = []
  for (let round = 1; round <= rounds; round++) {
    for (const target of [targets.serviceMiss, targets.baselineMiss].filter((t) => t !== undefined)) {
      await resetStats(target)
      const metered = target.key === "serviceMiss"
      const queries0 = metered ? await loadQueries(target.port) : 0
      const wrk = await runWrk({ port: target.port, script: "miss.lua", conns: 50, duration: seconds })
      const stats = await readStats(target)
      const queries = metered ? (await loadQueries(target.port)) - queries0 : stats.db_loads
      results.push({
        target: target.display,
        round,
        seconds,
        conns: 50,
        rps: Math.round(wrk.rps),
        requests: wrk.requests,
        non2xx: wrk.non2xx,
        misses: stats.misses,
        db_queries: queries,
        db_queries_from: metered ? "/metrics db_queries_total{query=findById|findByIds}" : "its own count",
        queries_per_miss: stats.misses > 0 ? Math.round((queries / stats.misses) * 1000) / 1000 : null
      })
    }
  }
  return results
}

export const printRefreshAhead = (results) => {
  console.log("")
  console.log(`refresh-ahead: one hot key, CACHE_TTL=${ttlSeconds}s, wrk ${hotConns} connections`)
  for (const r of results) {
    console.log(
      `  ${pad(r.target, 9)} round ${r.round}: ${r.rps} req/s for ${r.seconds} s, misses ${r.misses} ` +
        `(${r.misses_per_expiry} per expiry), refreshes ${r.refreshes}, db loads ${r.db_loads}`
    )
  }
}

export const printBatchedMiss = (results) => {
  console.log("")
  console.log("batched-miss: GET by random id with CACHE_TTL=1ms, 50 connections")
  for (const r of results) {
    console.log(
      `  ${pad(r.target, 9)} round ${r.round}: ${r.rps} req/s, misses ${r.misses}, db queries ${r.db_queries} ` +
        `(${r.db_queries_from}): ${r.queries_per_miss} per miss`
    )
  }
}

/** Correctness only (a smoke judges no figure): every answer 2xx. */
export const cacheRoundFailures = (refresh, batched) =>
  [...refresh, ...batched]
    .filter((r) => r.non2xx > 0)
    .map((r) => `${r.target} answered ${r.non2xx} non-2xx in round ${r.round}`)
