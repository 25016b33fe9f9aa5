// The benchmark suite (issues 6, 11): `node bench/run.mjs [--smoke]`, after `npm run build`.
//
// Starts everything it needs itself: a private redis-server per target (found through PATH) on a free port in a temp
// dir, the service as built for production (dist/main.js, NODE_ENV=production) seeded with 1,000 products over its
// API, and in the same run two references on the same data (own SQLite copies). Every target has a Redis of its own,
// so no target's keys cost another's commands (a SCAN, an eviction, a larger keyspace), and each round charges the
// CPU of that target's Redis alone:
//   baseline      bench/baseline.mjs: node:http + ioredis (the service's client options) + better-sqlite3, the same
//                 cache-aside with nothing else. The yardstick: every target is the service's req/s over its own.
//   hello-effect  bench/hello-effect.mjs: an @effect/platform-node server with one GET route and tracing off, as
//                 the service runs without an OTLP endpoint. For reference: what the platform alone allows.
// Load comes from wrk (bench/*.lua), pinned to one core with Redis (a server the service talks to, as if on another
// machine), the servers under test on the other; targets alternate A B A B within every round so drift hits all of
// them alike. Figures are ratios measured side by side.
//
// Scenarios (names for BENCH_ONLY): hit-id, list-hit, miss-id, mixed-95-5, put, scale-workers, stampede,
// refresh-ahead, batched-miss. put: 100% PUT of the stock of a random id (each invalidates its id and every list page).
// Each row gives the median req/s of its rounds with their spread (min-max), its ratio to the baseline as the median
// of the rounds' own ratios (each round's targets run one after the other) with their min-max, and the peak RSS of
// the target's process tree during its rounds (VmHWM, reset before each round).
// miss-id and mixed-95-5 also load the service on PostgreSQL ("service pg": the machine's server, BENCH_POSTGRES_URL,
// a database of its own per instance, seeded through its API and dropped at the end); without a PostgreSQL to reach,
// those rows are left out with a WARN line.
// scale-workers is the cache hit by id (hit.lua) against more instances of the service, WORKERS=1, WORKERS=2 and
// WORKERS=auto (cluster mode; own SQLite copies and key prefixes; a build that refuses auto runs without that row),
// reported as the ratio of each to 1 worker with the CPU of each instance's whole process tree. Those are pinned to
// no core (pinned to one, two workers could not scale); wrk and Redis still hold one core, so on a 2-core machine
// the second worker competes with them and the ratio shows less than two workers give where there are cores to spare.
// stampede: 200 simultaneous GETs of a freshly invalidated id; the service's database loads are the change in its
// /metrics db_queries_total{query="findById"}, and anything but exactly 1 fails the run.
// refresh-ahead: one hot key read by wrk (10 connections) on two instances with CACHE_TTL=2s, CACHE_REFRESH_AHEAD
// false and true: misses per expiry (10 s a round, 3 s in a smoke). batched-miss: the miss scenario (CACHE_TTL=1ms,
// random ids, 50 connections) with the database queries per miss, from /metrics (the baseline counts its own).
//
// Targets (at 50 connections, service over baseline): hit-id >= 0.7 (aim 0.8), list-hit >= 0.7 (aim 0.8),
// miss-id >= 0.5, mixed-95-5 >= 0.6; and the service's hit-id p99/p50 <= 3 (aim). Each gets a `target:` line that
// says PASS or BELOW. They are reported, not gated: a shared 2-core machine cannot gate speed, and CI runs only the
// smoke, which judges none. BENCH_ENFORCE=1 asks for a gate on a machine you trust: a full run then exits 1 when a
// minimum ("must") is BELOW; a smoke, or BENCH_CONNS without 50, refuses it.
//
// env: BENCH_SECONDS (3), BENCH_ROUNDS (5; more short rounds beat fewer long ones on a machine whose neighbours
//      come and go), BENCH_WARMUP seconds (2), BENCH_CONNS ("10,50"),
//      BENCH_ONLY=name[,name] (run only those scenarios and start only the servers they need; the service that is
//      seeded always starts; a filtered run leaves latest.json and latest.svg alone),
//      BENCH_ENFORCE=1 (above), BENCH_KEEP_TMP=1 (keep logs, dbs), BENCH_DIST=folder (measure the service built
//      there instead of dist/, e.g. an earlier commit's build, with this bench).
//      WORKERS is refused: it used to be passed through to every service instance, which pinned to one core
//      measured nothing; scale-workers measures cluster mode instead.
// --render FILE: redraw latest.json/latest.svg from an earlier results file, running nothing.
// --smoke: 1 round x 1 s, 1 s warm-up, for CI. Exit 1 when a correctness check fails (non-2xx, socket errors,
// hits that miss, misses that hit, a stampede that loads other than once, cluster stats that leave a worker out).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import Database from "better-sqlite3"
import { judge, ratioTargets, verdictLine } from "./lib/checks.mjs"
import { clockTicks, freePort, pinning, serverCpu, stopAll, versionOf, wrkCpu } from "./lib/process.mjs"
import { dropDatabases } from "./lib/postgres.mjs"
import { fixed, printTable, render, resultsDir, writeLatest } from "./lib/report.mjs"
import { runOnce, selection, stampede, summarize, warmUp } from "./lib/scenarios.mjs"
import { seed } from "./lib/seed.mjs"
import { printStampedes, runStampedes } from "./lib/stampedeRounds.mjs"
import {
  cacheRoundFailures,
  printBatchedMiss,
  printRefreshAhead,
  runBatchedMiss,
  runRefreshAhead
} from "./lib/cacheRounds.mjs"
import { checkBuild, gitInfo, redisServer, startRedis, targetSpecs } from "./lib/servers.mjs"
import { productCount, readSettings, UsageError } from "./lib/settings.mjs"
import { ensureWrk } from "./lib/wrk.mjs"

// 1-minute load averages above these mark the figures as noisy: before the bench starts the machine should be idle;
// during it the bench itself keeps about 2 runnable (wrk and one server), 3 in scale-workers (wrk and two workers).
const busyBefore = 1
const busyAfter = (workersRun) => (workersRun ? 4 : 3)

/**
 * Starts every server but the seeded service, each on a copy of its database, one after the other: started together
 * on the servers' one core of a busy machine, they missed their readiness bound. An optional one that does not start
 * costs its rows and a warning; any other stops the run.
 */
const startOthers = async (keys, options, warnings) => {
  const children = {}
  for (const key of keys) {
    const [outcome] = await Promise.allSettled([targetSpecs[key].start(options(key))])
    if (outcome.status === "fulfilled") children[key] = outcome.value
    else if (targetSpecs[key].optional) {
      const why = String(outcome.reason?.message ?? outcome.reason).split("\n")
      warnings.push(`${targetSpecs[key].display} did not start, so its rows are missing: ${why.slice(0, 3).join(" ")}`)
    } else throw outcome.reason
  }
  return children
}

/** Every scenario, round by round: each target in turn within a round, so the machine's drift hits all alike. */
const runScenarios = async (chosen, targets, settings) => {
  const runs = []
  for (const scenario of chosen) {
    const list = scenario.targets.filter((key) => targets[key] !== undefined).map((key) => targets[key])
    process.stdout.write(`${scenario.name}: ${scenario.about}\n  warm-up`)
    for (const target of list) {
      await warmUp(scenario, target, settings)
      process.stdout.write(` ${target.display}`)
    }
    process.stdout.write("\n")
    for (const conns of settings.conns) {
      for (let round = 1; round <= settings.rounds; round++) {
        const line = []
        for (const target of list) {
          const run = await runOnce({ scenario, target, conns, round, seconds: settings.seconds })
          runs.push(run)
          line.push(`${target.display} ${Math.round(run.rps)}`)
        }
        console.log(`  c${conns} round ${round}: ${line.join(", ")} req/s`)
      }
    }
  }
  return runs
}

const main = async (settings, state) => {
  if (settings.render !== undefined) {
    render(settings.render, ratioTargets)
    return 0
  }
  const { smoke } = settings
  const { only, chosen, stampede: runStampede, extras } = selection()
  const runAhead = extras.some((e) => e.name === "refresh-ahead")
  const runBatched = extras.some((e) => e.name === "batched-miss")
  checkBuild()
  ensureWrk()
  const tmp = (state.tmp = mkdtempSync(join(tmpdir(), "bench-")))
  const startedAt = new Date()
  const loadBefore = loadavg()[0]
  const taken = new Set()
  /** @type {Array<string>} */
  const warnings = []
  const workersRun = chosen.some((s) => s.name === "scale-workers")
  const where = pinning
    ? `wrk and redis on cpu ${wrkCpu}, servers on cpu ${serverCpu}${workersRun ? " (scale-workers servers on any)" : ""}`
    : "no pinning"
  console.log(
    `bench: ${smoke ? "smoke, " : ""}${settings.rounds} round(s) x ${settings.seconds} s per target, ` +
      `warm-up ${settings.warmupSeconds} s, conns ${settings.conns.join("/")}, ${where}` +
      `${only ? `; only ${only.join(", ")}` : ""}`
  )

  // The service is always started: the others' databases are copies of the one seeded through it.
  const keys = ["service"]
  for (const scenario of [...chosen, ...(runStampede ? [stampede] : []), ...extras]) {
    for (const key of scenario.targets) if (!keys.includes(key)) keys.push(key)
  }
  const redises = {}
  for (const key of keys) state.redises.push((redises[key] = await startRedis({ taken, tmp, name: `redis-${key}` })))
  const ports = {}
  for (const key of keys) ports[key] = await freePort(taken)
  const dbs = Object.fromEntries(keys.filter((k) => !targetSpecs[k].noDb).map((k) => [k, join(tmp, `${k}.db`)]))
  const options = (key) => ({ port: ports[key], redisUrl: redises[key].url, dbPath: dbs[key], logDir: tmp })

  const service = await targetSpecs.service.start(options("service"))
  await seed(ports.service)
  const others = keys.filter((key) => key !== "service")
  const source = new Database(dbs.service, { readonly: true })
  for (const key of others) if (dbs[key] !== undefined) source.prepare("VACUUM INTO ?").run(dbs[key])
  source.close()
  const children = { service, ...(await startOthers(others, options, warnings)) }
  const targets = Object.fromEntries(
    Object.entries(children).map(([key, child]) => {
      const { display, stats } = targetSpecs[key]
      return [key, { key, display, child, port: ports[key], stats, redisPid: redises[key].child.pid }]
    })
  )

  const runs = await runScenarios(chosen, targets, settings)
  const stampedes = runStampede ? await runStampedes(targets, settings.rounds) : []
  // Fewer rounds than the ratios: each refresh-ahead round is 10 s per instance, and these figures barely vary.
  const cacheRounds = Math.min(settings.rounds, 3)
  const refreshAhead = runAhead ? await runRefreshAhead(targets, { ...settings, rounds: cacheRounds }) : []
  const batchedMiss = runBatched ? await runBatchedMiss(targets, { ...settings, rounds: cacheRounds }) : []

  const rows = summarize(runs)
  const finishedAt = new Date()
  const loadAfter = loadavg()[0]
  const { failures, notes, verdicts, ...judged } = judge(rows, stampedes, settings)
  failures.push(...cacheRoundFailures(refreshAhead, batchedMiss))
  warnings.push(...judged.warnings)
  if (loadBefore > busyBefore || loadAfter > busyAfter(workersRun)) {
    warnings.push(
      `machine busy (load average ${fixed(loadBefore, 2)} before, ${fixed(loadAfter, 2)} after): absolute figures are noisy`
    )
  }

  console.log("")
  if (rows.length > 0) printTable(rows)
  if (runStampede) printStampedes(stampedes)
  if (runAhead) printRefreshAhead(refreshAhead)
  if (runBatched) printBatchedMiss(batchedMiss)
  console.log("")
  for (const note of notes) console.log(`check: ${note}`)
  // One cold second per target says nothing about speed: a smoke checks correctness only.
  if (smoke) console.log("target: not judged in a smoke run (1 s per target, not warmed up)")
  else for (const v of verdicts) console.log(verdictLine(v))
  for (const warning of warnings) console.log(`WARN: ${warning}`)
  for (const failure of failures) console.log(`FAIL: ${failure}`)

  const results = {
    started_at: startedAt.toISOString(),
    finished_at: finishedAt.toISOString(),
    // "partial": a non-smoke run of the BENCH_ONLY scenarios.
    mode: smoke ? "smoke" : only ? "partial" : "full",
    only,
    settings: {
      seconds: settings.seconds,
      rounds: settings.rounds,
      warmup_seconds: settings.warmupSeconds,
      conns: settings.conns,
      products: productCount,
      wrk_threads: 1,
      enforce: settings.enforce
    },
    machine: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      pinning: pinning ? { wrk_and_redis: wrkCpu, servers: serverCpu, scale_workers: "none" } : null,
      clk_tck: clockTicks,
      node: process.version,
      wrk: versionOf("wrk", ["--version"]),
      redis: versionOf(redisServer, ["--version"])
    },
    git: gitInfo(),
    // By instance, as the rows of the summary name them; only the ones this run started.
    targets: Object.fromEntries(Object.keys(targets).map((key) => [key, targetSpecs[key].about])),
    scenarios: chosen.map(({ name, about }) => ({ name, about })),
    ratio_targets: ratioTargets,
    summary: rows,
    verdicts: smoke ? [] : verdicts,
    stampede: stampedes,
    refresh_ahead: refreshAhead,
    batched_miss: batchedMiss,
    load_average: { before: loadBefore, after: loadAfter },
    failures,
    warnings,
    runs
  }
  mkdirSync(resultsDir, { recursive: true })
  const stamp = startedAt.toISOString().replace(/[:.]/g, "-")
  writeFileSync(join(resultsDir, `${stamp}.json`), JSON.stringify(results, null, 2) + "\n")
  if (smoke || only) {
    // A smoke's 1-second figures say nothing, a filtered run is a part: neither replaces the chart the README shows.
    const why = smoke ? "a smoke run" : "a BENCH_ONLY run"
    console.log(`\nwrote bench/results/${stamp}.json (${why} leaves latest.json and latest.svg alone)`)
  } else {
    writeLatest(results, ratioTargets)
    console.log(`\nwrote bench/results/${stamp}.json, latest.json, latest.svg`)
  }

  const gated = settings.enforce && verdicts.filter((v) => v.level === "must" && !v.pass)
  if (gated && gated.length > 0) console.log(`BENCH_ENFORCE=1: ${gated.length} minimum target(s) BELOW`)
  return failures.length > 0 || (gated && gated.length > 0) ? 1 : 0
}

/** @type {{ tmp: string | undefined; redises: Array<Awaited<ReturnType<typeof startRedis>>> }} */
const state = { tmp: undefined, redises: [] }
let exitCode = 1
let stopping = false
const cleanup = async (keepTmp) => {
  if (stopping) return
  stopping = true
  for (const redis of state.redises) redis.client.disconnect()
  await stopAll("redis-server")
  await dropDatabases()
  if (state.tmp !== undefined) {
    if (exitCode === 0 && !keepTmp) rmSync(state.tmp, { recursive: true, force: true })
    else console.error(`logs and databases kept in ${state.tmp}`)
  }
}
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping`)
    exitCode = 130
    cleanup(true).finally(() => process.exit(130))
  })
}

let keepTmp = false
try {
  const settings = readSettings()
  keepTmp = settings.keepTmp
  exitCode = await main(settings, state)
} catch (error) {
  if (error instanceof UsageError) console.error(`bench: ${error.message}`)
  else console.error(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
  exitCode = 1
} finally {
  await cleanup(keepTmp)
}
process.exit(exitCode)
