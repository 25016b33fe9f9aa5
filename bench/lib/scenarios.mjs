// The scenarios: which servers each loads, with which wrk script, warmed how; one timed run of a target; the
// medians over the rounds and each row's ratios.
import { expectOk, inBatches } from "./http.mjs"
import { cpuSeconds, cpuTree, peakRssMb, resetPeakRss } from "./process.mjs"
import { runWrk } from "./wrk.mjs"
import { productCount, scaleWorkers, UsageError } from "./settings.mjs"

const warmIds = (port) =>
  inBatches(productCount, 16, async (i) => {
    await expectOk(port, "GET", `/api/v1/products/${i + 1}`)
  })

const warmList = (port) => expectOk(port, "GET", "/api/v1/products?offset=0&limit=20")

export const resetStats = (target) => expectOk(target.port, "POST", "/api/v1/cache/stats/reset")
export const readStats = async (target) => (await expectOk(target.port, "GET", "/api/v1/cache/stats")).json.cache_stats

export const scenarios = [
  {
    name: "hit-id",
    about: "GET by random id among 1..1000, all warmed: every read should hit",
    targets: ["service", "baseline", "hello"],
    script: { service: "hit.lua", baseline: "hit.lua", hello: "hello.lua" },
    warm: warmIds
  },
  {
    name: "list-hit",
    about: "GET /api/v1/products?offset=0&limit=20, warmed",
    targets: ["service", "baseline"],
    script: { service: "list.lua", baseline: "list.lua" },
    warm: warmList
  },
  {
    name: "miss-id",
    about:
      "GET by random id on instances with CACHE_TTL=1ms: every entry expires before its next read (the service on " +
      "SQLite and on PostgreSQL)",
    targets: ["serviceMiss", "serviceMissPg", "baselineMiss"],
    script: { serviceMiss: "miss.lua", serviceMissPg: "miss.lua", baselineMiss: "miss.lua" }
  },
  {
    name: "mixed-95-5",
    about:
      "95% GET by random id, 5% PUT of the stock of a random id (invalidates the id and every list); the service on " +
      "SQLite and on PostgreSQL",
    targets: ["service", "servicePg", "baseline"],
    script: { service: "mixed.lua", servicePg: "mixed.lua", baseline: "mixed.lua" },
    warm: warmIds
  },
  {
    name: "put",
    about:
      "100% PUT of the stock of a random id (each invalidates the id and every list page); the service on SQLite and " +
      "on PostgreSQL",
    targets: ["service", "servicePg", "baseline"],
    script: { service: "put.lua", servicePg: "put.lua", baseline: "put.lua" }
  },
  {
    name: "scale-workers",
    about:
      `GET by random id, all warmed, on the service with WORKERS=${scaleWorkers.join(", WORKERS=")} (pinned to no ` +
      "core; wrk and Redis keep one core busy, so workers beyond the other cores compete with them)",
    targets: scaleWorkers.map((n) => `workers${n}`),
    script: Object.fromEntries(scaleWorkers.map((n) => [`workers${n}`, "hit.lua"])),
    warm: warmIds
  }
]

// Not a wrk scenario (it runs after them), but selectable by name like one.
export const stampede = { name: "stampede", targets: ["service", "baseline"] }

// Measured after the wrk scenarios too (bench/lib/cacheRounds.mjs), each with its own instances: not req/s ratios
// but what the cache does: misses per expiry of a hot key, database queries per miss.
export const refreshAhead = { name: "refresh-ahead", targets: ["aheadOff", "aheadOn"] }
export const batchedMiss = { name: "batched-miss", targets: ["serviceMiss", "baselineMiss"] }
const extras = [refreshAhead, batchedMiss]

/**
 * BENCH_ONLY=name[,name]: the scenarios to run (all when unset). Also refuses WORKERS, which this bench used to pass
 * to every service instance: pinned to one core, more workers measured nothing; scale-workers measures them instead.
 */
export const selection = () => {
  if (process.env.WORKERS !== undefined && process.env.WORKERS !== "") {
    throw new UsageError(
      `WORKERS=${process.env.WORKERS} is no longer passed to the service: on one core more workers cannot help. ` +
        `The scale-workers scenario measures WORKERS=${scaleWorkers.join(", WORKERS=")}: ` +
        "unset WORKERS and run BENCH_ONLY=scale-workers"
    )
  }
  const known = [...scenarios.map((s) => s.name), stampede.name, ...extras.map((s) => s.name)]
  const text = process.env.BENCH_ONLY ?? ""
  if (text.trim() === "") return { only: null, chosen: scenarios, stampede: true, extras }
  const names = text
    .split(",")
    .map((name) => name.trim())
    .filter((name) => name !== "")
  const unknown = names.filter((name) => !known.includes(name))
  if (unknown.length > 0 || names.length === 0) {
    const what = names.length === 0 ? "names no scenario" : `unknown scenario ${unknown.join(", ")}`
    throw new UsageError(`BENCH_ONLY=${text}: ${what}; the scenarios are ${known.join(", ")}`)
  }
  const only = known.filter((name) => names.includes(name))
  return {
    only,
    chosen: scenarios.filter((s) => only.includes(s.name)),
    stampede: only.includes(stampede.name),
    extras: extras.filter((s) => only.includes(s.name))
  }
}

/** Warms `target` for `scenario` before its first round. */
export const warmUp = async (scenario, target, { warmupSeconds, conns }) => {
  if (scenario.warm !== undefined && target.stats) await scenario.warm(target.port)
  if (warmupSeconds > 0) {
    const script = scenario.script[target.key]
    await runWrk({ port: target.port, script, conns: Math.max(...conns), duration: warmupSeconds })
  }
}

/** One round of `scenario` against `target`: wrk's figures, the CPU of the target's process tree and Redis's. */
export const runOnce = async ({ scenario, target, conns, round, seconds }) => {
  const { redisPid } = target
  if (scenario.warm !== undefined && target.stats) await scenario.warm(target.port)
  if (target.stats) await resetStats(target)
  resetPeakRss(target.child.pid)
  const tree0 = cpuTree(target.child.pid)
  const redis0 = cpuSeconds(redisPid)
  const wrk = await runWrk({ port: target.port, script: scenario.script[target.key], conns, duration: seconds })
  const tree1 = cpuTree(target.child.pid)
  const cpuRedis = cpuSeconds(redisPid) - redis0
  const peakRss = peakRssMb(target.child.pid)
  // Per process of the tree (a cluster's primary first, then its workers); a process gone since counts nothing.
  const cpuProcesses = [...tree1].map(([pid, s]) => Math.round((s - (tree0.get(pid) ?? 0)) * 100) / 100)
  const cpuService = cpuProcesses.reduce((a, b) => a + b, 0)
  const cache = target.stats ? await readStats(target) : undefined
  return {
    target: target.display,
    instance: target.key,
    scenario: scenario.name,
    conns,
    round,
    ...wrk,
    cpu_service_s: Math.round(cpuService * 100) / 100,
    cpu_redis_s: Math.round(cpuRedis * 100) / 100,
    peak_rss_mb: peakRss,
    cpu_processes_s: cpuProcesses.length > 1 ? cpuProcesses : undefined,
    cache,
    hits_per_request: cache && wrk.requests > 0 ? cache.hits / wrk.requests : undefined,
    misses_per_request: cache && wrk.requests > 0 ? cache.misses / wrk.requests : undefined
  }
}

const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** One row per scenario, connection count and instance: medians over its rounds, sums of its counts, its ratios. */
export const summarize = (runs) => {
  const groups = new Map()
  for (const run of runs) {
    const key = `${run.scenario}|${run.conns}|${run.instance}`
    if (!groups.has(key)) groups.set(key, [])
    groups.get(key).push(run)
  }
  const rows = [...groups.values()].map((group) => {
    const first = group[0]
    const requests = group.reduce((sum, run) => sum + run.requests, 0)
    const sumCache = (field) => group.reduce((sum, run) => sum + (run.cache?.[field] ?? 0), 0)
    const totalGets = sumCache("total_gets")
    return {
      target: first.target,
      instance: first.instance,
      scenario: first.scenario,
      conns: first.conns,
      rounds: group.length,
      rps: Math.round(median(group.map((run) => run.rps))),
      rps_min: Math.round(Math.min(...group.map((run) => run.rps))),
      rps_max: Math.round(Math.max(...group.map((run) => run.rps))),
      // The highest of the rounds' peaks: what the target needed at most under this load.
      peak_rss_mb: Math.max(...group.map((run) => run.peak_rss_mb ?? NaN)),
      rounds_rps: group.map((run) => run.rps),
      p50_ms: median(group.map((run) => run.p50_ms)),
      p99_ms: median(group.map((run) => run.p99_ms)),
      cpu_service_s: Math.round(median(group.map((run) => run.cpu_service_s)) * 100) / 100,
      cpu_redis_s: Math.round(median(group.map((run) => run.cpu_redis_s)) * 100) / 100,
      // Cluster mode: the primary's, then each worker's (medians over the rounds).
      cpu_processes_s: first.cpu_processes_s?.map((_, i) => median(group.map((run) => run.cpu_processes_s?.[i]))),
      cpu_service_us_per_req: Math.round((group.reduce((s, r) => s + r.cpu_service_s, 0) / requests) * 1e6),
      cpu_redis_us_per_req: Math.round((group.reduce((s, r) => s + r.cpu_redis_s, 0) / requests) * 1e6),
      requests,
      non2xx: group.reduce((sum, run) => sum + run.non2xx, 0),
      socket_errors: group.reduce((sum, run) => sum + Object.values(run.socket_errors).reduce((a, b) => a + b, 0), 0),
      // Reads the stats counted: each a hit, a miss or an error (lookup failed or skipped).
      reads_counted: first.cache ? totalGets + sumCache("errors") : undefined,
      hit_rate: first.cache ? (totalGets === 0 ? 0 : sumCache("hits") / totalGets) : undefined,
      misses_per_request: first.cache ? sumCache("misses") / requests : undefined,
      // Server-side: misses over every read the service counted (wrk leaves up to `conns` answers uncounted at the
      // end of a run, which inflates per-request figures on short runs).
      miss_rate: first.cache ? sumCache("misses") / Math.max(1, totalGets + sumCache("errors")) : undefined,
      sets_per_request: first.cache ? sumCache("sets") / requests : undefined,
      cache_errors: first.cache ? sumCache("errors") : undefined
    }
  })
  /**
   * @type {Array<(typeof rows)[number] & {
   *   ratio_workers1?: number | undefined
   *   ratio_baseline?: number | undefined
   *   ratio_baseline_min?: number | undefined
   *   ratio_baseline_max?: number | undefined
   *   rss_ratio_baseline?: number | undefined
   *   ratio_hello?: number | undefined
   * }>}
   */
  const ratioed = rows
  const find = (scenario, conns, target) =>
    ratioed.find((r) => r.scenario === scenario && r.conns === conns && r.target === target)
  const ratio = (row, other) => (other ? Math.round((row.rps / other.rps) * 1000) / 1000 : undefined)
  const firstWorkers = `workers${scaleWorkers[0]}`
  for (const row of ratioed) {
    if (row.scenario === "scale-workers") {
      // Unpinned, against the same service with one worker: no like-for-like ratio to the pinned references.
      const one = ratioed.find(
        (r) => r.scenario === row.scenario && r.conns === row.conns && r.instance === firstWorkers
      )
      row.ratio_workers1 = ratio(row, one)
      continue
    }
    // The yardstick: the node:http + ioredis baseline doing the same work in the same scenario. Each round's targets
    // ran back to back, so each round gives a ratio of its own: the row's is their median, with their spread.
    const base = find(row.scenario, row.conns, "baseline")
    if (base !== undefined) {
      const perRound = row.rounds_rps.map((rps, i) => rps / base.rounds_rps[i]).filter(Number.isFinite)
      const round3 = (value) => Math.round(value * 1000) / 1000
      row.ratio_baseline = round3(median(perRound))
      row.ratio_baseline_min = round3(Math.min(...perRound))
      row.ratio_baseline_max = round3(Math.max(...perRound))
      row.rss_ratio_baseline = Math.round((row.peak_rss_mb / base.peak_rss_mb) * 100) / 100
    }
    // For reference: the platform's hello-world (tracing off, as the service runs), which does no I/O at all.
    row.ratio_hello = ratio(row, find("hit-id", row.conns, "hello-effect"))
  }
  return rows
}
