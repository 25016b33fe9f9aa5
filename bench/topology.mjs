// What the Redis topologies cost, for the README: (1) what a write's WAIT adds (PUT latency and throughput against one
// Redis and against a Sentinel-managed master with one replica, GET hits as the control), and (2) what a failover
// costs a reader (SENTINEL FAILOVER, and the master SIGKILLed): time until reads hit again on the new master, reads
// answered from the database meanwhile, the slowest read, and that every read answered 200 with the right value.
//
//   npm run build && node bench/topology.mjs
//
// BENCH_ROUNDS (5), BENCH_SECONDS (3), BENCH_CONNS (16), BENCH_FAILOVERS (3). Every process it starts (redis-server,
// Sentinels, the services, wrk) is on loopback, on free ports, in a temp dir, and stopped on the way out. Writes
// bench/results/topology.json and prints markdown tables.
import { cpSync, mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import { spawnSync } from "node:child_process"
import http from "node:http"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { performance } from "node:perf_hooks"
import { Redis } from "ioredis"
import { expectOk, inBatches, request, waitReady } from "./lib/http.mjs"
import { benchDir, freePort, root, serverCpu, sleep, spawnChild, stopAll, versionOf, wrkCpu } from "./lib/process.mjs"
import { seed } from "./lib/seed.mjs"
import { productCount } from "./lib/settings.mjs"
import { ensureWrk, runWrk } from "./lib/wrk.mjs"

const envInt = (name, fallback) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`)
  return value
}
const rounds = envInt("BENCH_ROUNDS", 5)
const seconds = envInt("BENCH_SECONDS", 3)
const conns = envInt("BENCH_CONNS", 16)
const failovers = envInt("BENCH_FAILOVERS", 3)
const name = "mymaster"

const tmp = mkdtempSync(join(tmpdir(), "bench-topology-"))
/** @type {Set<number>} */
const taken = new Set([6379])

// ---------------------------------------------------------------- the service build, frozen for the whole run

// A copy of dist/ (with the project's node_modules beside it), so a rebuild in the working tree during the run
// cannot change the build half-way.
const app = join(tmp, "app")
const freezeBuild = () => {
  mkdirSync(app)
  cpSync(join(root, "dist"), join(app, "dist"), { recursive: true })
  writeFileSync(join(app, "package.json"), JSON.stringify({ type: "module" }))
  symlinkSync(join(root, "node_modules"), join(app, "node_modules"))
}

// ---------------------------------------------------------------- Redis processes

/** @param {number} port */
const client = (port) => new Redis({ host: "127.0.0.1", port, lazyConnect: false, maxRetriesPerRequest: 1 })

/** `[k, v, k, v]` or `k:v` lines as a record. */
const fields = (reply) => {
  /** @type {Record<string, string>} */
  const record = {}
  if (Array.isArray(reply))
    for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = String(reply[i + 1])
  else
    for (const line of String(reply).split("\r\n")) {
      const at = line.indexOf(":")
      if (at > 0) record[line.slice(0, at)] = line.slice(at + 1)
    }
  return record
}

/**
 * Polls `probe` until `check` holds; throws naming `what` after `timeoutMs`.
 * @template A
 * @param {string} what
 * @param {() => Promise<A>} probe
 * @param {(value: A) => boolean} check
 */
const poll = async (what, probe, check, timeoutMs = 20_000, everyMs = 100) => {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      last = await probe()
      if (check(last)) return last
    } catch (error) {
      last = String(error)
    }
    await sleep(everyMs)
  }
  throw new Error(`${what} not within ${timeoutMs} ms; last: ${JSON.stringify(last)}`)
}

/** A redis-server on a free port, pinned beside wrk; `--save ""`: no snapshots. */
const startRedis = async (label, extra = [], sentinelConf) => {
  const port = await freePort(taken)
  const dir = join(tmp, `${label}-${port}`)
  mkdirSync(dir)
  const args =
    sentinelConf === undefined
      ? ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no", ...extra]
      : (writeFileSync(join(dir, "sentinel.conf"), `port ${port}\nbind 127.0.0.1\ndir ${dir}\n${sentinelConf}`),
        [join(dir, "sentinel.conf"), "--sentinel"])
  const child = spawnChild(label, "redis-server", args, { cpu: wrkCpu, log: join(dir, "log") })
  const admin = client(port)
  admin.on("error", () => undefined)
  await poll(
    `${label} on :${port}`,
    () => admin.ping(),
    (reply) => reply === "PONG",
    10_000,
    50
  )
  return { label, port, child, admin }
}

const replicationArgs = ["--repl-diskless-sync-delay", "0", "--replica-announce-ip", "127.0.0.1"]

/** One Redis (REDIS_URL). */
const startSingle = async () => {
  const redis = await startRedis("single")
  return { kind: "single", servers: [redis], env: { REDIS_URL: `redis://127.0.0.1:${redis.port}` } }
}

/** A master, one replica, three Sentinels; waits until replication is up and every Sentinel sees the others. */
const startSentinel = async (tag = "") => {
  const master = await startRedis(`master${tag}`, replicationArgs)
  const replica = await startRedis(`replica${tag}`, [
    ...replicationArgs,
    "--replicaof",
    "127.0.0.1",
    String(master.port)
  ])
  const conf = [
    `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    `sentinel failover-timeout ${name} 3000`,
    `sentinel parallel-syncs ${name} 1`,
    ""
  ].join("\n")
  const sentinels = []
  for (let i = 0; i < 3; i++) sentinels.push(await startRedis(`sentinel${tag}-${i}`, [], conf))
  await poll(
    "replica in sync",
    async () => fields(await replica.admin.info("replication")),
    (info) => info.master_link_status === "up"
  )
  for (const sentinel of sentinels) {
    await poll(
      `Sentinel :${sentinel.port} seeing 1 replica and 2 other Sentinels`,
      async () => fields(await sentinel.admin.call("SENTINEL", "MASTER", name)),
      (state) => state.flags === "master" && state["num-slaves"] === "1" && state["num-other-sentinels"] === "2"
    )
  }
  return {
    kind: "sentinel",
    master,
    replica,
    sentinels,
    servers: [master, replica, ...sentinels],
    env: { REDIS_SENTINELS: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","), REDIS_SENTINEL_NAME: name }
  }
}

const stopRedis = async (servers) => {
  for (const server of servers) server.admin.disconnect()
  await Promise.all(
    servers.map(async (server) => {
      if (server.child.exitState !== undefined) return
      server.child.kill("SIGKILL")
      await new Promise((done) =>
        server.child.exitState !== undefined ? done(undefined) : server.child.once("exit", done)
      )
    })
  )
}

// ---------------------------------------------------------------- the service

const startService = async (label, redisEnv) => {
  const port = await freePort(taken)
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    HTTP_PORT: String(port),
    HOST: "127.0.0.1",
    DB_PATH: join(tmp, `${label}-${port}.db`),
    LOG_LEVEL: "warn",
    LOG_FORMAT: "json",
    ...redisEnv
  }
  const child = spawnChild(label, process.execPath, [join(app, "dist/main.js")], {
    env,
    cpu: serverCpu,
    log: join(tmp, `${label}-${port}.log`)
  })
  await waitReady(child, port, "/health", (json) => json.status === "healthy" && json.checks?.cache === "up")
  return { label, port, child }
}

const stopService = async (service) => {
  if (service.child.exitState !== undefined) return
  service.child.kill("SIGTERM")
  await Promise.race([new Promise((done) => service.child.once("exit", done)), sleep(10_000)])
  if (service.child.exitState === undefined) service.child.kill("SIGKILL")
}

// ---------------------------------------------------------------- statistics

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}
const spread = (values) => ({ min: Math.min(...values), max: Math.max(...values) })
/** The index of the last element satisfying `test`, or -1 (Array#findLastIndex is ES2023, beyond the bench's lib). */
const lastIndex = (array, test) => {
  for (let i = array.length - 1; i >= 0; i--) if (test(array[i])) return i
  return -1
}
const fmt = (value, digits = 2) => (Number.isFinite(value) ? value.toFixed(digits) : String(value))

// ---------------------------------------------------------------- part 1: what WAIT adds

/** All ids cached: one GET each, then the stats reset so the round counts only its own reads. */
const warmAll = async (port) => {
  await inBatches(productCount, 8, (i) => expectOk(port, "GET", `/api/v1/products/${i + 1}`))
  await expectOk(port, "POST", "/api/v1/cache/stats/reset")
}

/** @returns {Promise<Record<string, any>>} */
const measureRound = async (service, kind) => {
  if (kind === "put" || kind === "put1") {
    process.env.BENCH_PUT_PERCENT = "100"
    const before = (await expectOk(service.port, "GET", "/api/v1/cache/stats")).json.cache_stats
    const result = await runWrk({
      port: service.port,
      script: "mixed.lua",
      conns: kind === "put1" ? 1 : conns,
      duration: seconds
    })
    const after = (await expectOk(service.port, "GET", "/api/v1/cache/stats")).json.cache_stats
    return { ...result, cache_errors: after.errors - before.errors }
  }
  await warmAll(service.port)
  const result = await runWrk({ port: service.port, script: "hit.lua", conns, duration: seconds })
  const stats = (await expectOk(service.port, "GET", "/api/v1/cache/stats")).json.cache_stats
  return { ...result, hit_rate: stats.hit_rate, cache_errors: stats.errors }
}

/** Sequential SET vs SET + WAIT 1 100 pipelines straight to the Sentinel master: WAIT's cost without the service. */
const rawWait = async (masterPort, count = 2000) => {
  const redis = client(masterPort)
  try {
    const time = async (withWait) => {
      const samples = []
      for (let i = 0; i < count; i++) {
        const started = performance.now()
        // SET, not DEL: a DEL of a missing key is not replicated, and WAIT would then return at once.
        const pipeline = redis.pipeline().set(`bench:raw:${i % 100}`, String(i))
        if (withWait) pipeline.call("WAIT", "1", "100")
        const replies = await pipeline.exec()
        if (withWait && Number(replies?.[1]?.[1]) < 1) throw new Error("WAIT: no replica confirmed")
        samples.push(performance.now() - started)
      }
      return { p50_ms: percentile(samples, 50), p99_ms: percentile(samples, 99) }
    }
    await time(true)
    return { set: await time(false), set_wait: await time(true), count }
  } finally {
    redis.disconnect()
  }
}

const partOne = async () => {
  const single = await startSingle()
  const sentinel = await startSentinel()
  const services = {
    single: await startService("svc-single", single.env),
    sentinel: await startService("svc-sentinel", sentinel.env)
  }
  try {
    for (const service of Object.values(services)) {
      await seed(service.port, { quiet: true })
      // Warm-up: one short PUT and one GET run each, not counted.
      process.env.BENCH_PUT_PERCENT = "100"
      await runWrk({ port: service.port, script: "mixed.lua", conns, duration: 1 })
      await warmAll(service.port)
      await runWrk({ port: service.port, script: "hit.lua", conns, duration: 1 })
    }
    /** @type {Array<{ round: number; topology: string; kind: string } & Record<string, any>>} */
    const raw = []
    for (let round = 1; round <= rounds; round++) {
      // ABBA: the topology that goes first alternates, so drift of the shared machine falls on both alike.
      const order = round % 2 ? ["single", "sentinel"] : ["sentinel", "single"]
      for (const kind of ["put", "put1", "get"]) {
        for (const topology of order) {
          const result = await measureRound(services[topology], kind)
          raw.push({ round, topology, kind, ...result, loadavg_1m: loadavg()[0] })
          console.log(
            `round ${round} ${kind.toUpperCase().padEnd(4)} ${topology.padEnd(8)} ${fmt(result.rps, 0)} req/s  p50 ${fmt(result.p50_ms)} ms  p99 ${fmt(result.p99_ms)} ms  non2xx ${result.non2xx}` +
              (result.hit_rate === undefined ? "" : `  hit_rate ${fmt(result.hit_rate, 4)}`) +
              `  cache_errors ${result.cache_errors}  load ${fmt(loadavg()[0], 1)}`
          )
        }
      }
    }
    const raw_wait = await rawWait(sentinel.master.port)
    return { raw, raw_wait }
  } finally {
    await Promise.all(Object.values(services).map(stopService))
    await stopRedis([...single.servers, ...sentinel.servers])
  }
}

const summariseOne = (raw) => {
  const rows = []
  for (const kind of ["put", "put1", "get"])
    for (const topology of ["single", "sentinel"]) {
      const runs = raw.filter((r) => r.kind === kind && r.topology === topology)
      const row = { kind, topology, rounds: runs.length }
      for (const metric of ["rps", "p50_ms", "p99_ms"]) {
        const values = runs.map((r) => r[metric])
        row[metric] = { median: median(values), ...spread(values) }
      }
      row.non2xx = runs.reduce((sum, r) => sum + r.non2xx, 0)
      row.socket_errors = runs.reduce((sum, r) => sum + Object.values(r.socket_errors).reduce((a, b) => a + b, 0), 0)
      row.cache_errors = runs.reduce((sum, r) => sum + r.cache_errors, 0)
      if (kind === "get") row.min_hit_rate = Math.min(...runs.map((r) => r.hit_rate))
      rows.push(row)
    }
  return rows
}

// ---------------------------------------------------------------- part 2: what a failover costs

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })

/** One GET, timed from the moment it is issued to the end of its body. */
const timedGet = (port, path) =>
  new Promise((done) => {
    const started = performance.now()
    const req = http.get({ host: "127.0.0.1", port, path, agent, timeout: 10_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => (body += chunk))
      res.on("end", () =>
        done({ started, ended: performance.now(), status: res.statusCode, xcache: res.headers["x-cache"], body })
      )
      res.on("error", (error) => done({ started, ended: performance.now(), status: 0, error: error.message }))
    })
    req.on("timeout", () => req.destroy(new Error("client timeout (10 s)")))
    req.on("error", (error) => done({ started, ended: performance.now(), status: 0, error: error.message }))
  })

/**
 * One repetition on a fresh Sentinel setup and a fresh service: a product written (its last write acknowledged, so
 * WAIT-confirmed), read until it hits, then read every ~5 ms while the failover is triggered.
 * @param {"failover" | "kill"} trigger
 */
const failoverOnce = async (trigger, rep) => {
  const setup = await startSentinel(`-${trigger}${rep}`)
  const service = await startService(`svc-${trigger}${rep}`, setup.env)
  const watcher = client(setup.sentinels[1].port)
  watcher.on("error", () => undefined)
  try {
    const created = await expectOk(service.port, "POST", "/api/v1/products", {
      name: "Failover lamp",
      price: 20,
      stock: 5
    })
    const id = created.json.product.id
    const updated = await expectOk(service.port, "PUT", `/api/v1/products/${id}`, { price: 25.5, stock: 7 })
    const expected = updated.json.product
    const path = `/api/v1/products/${id}`
    await poll(
      "product cached",
      () => request(service.port, "GET", path),
      (a) => a.json?.from_cache === true,
      5000,
      10
    )

    let switchedAt = NaN
    /** @type {string | undefined} */
    let switchMessage
    await watcher.subscribe("+switch-master")
    watcher.on("message", (_channel, message) => {
      if (Number.isNaN(switchedAt)) {
        switchedAt = performance.now()
        switchMessage = message
      }
    })

    const reads = []
    const check = (answer) => {
      let json
      try {
        json = JSON.parse(answer.body ?? "")
      } catch {
        json = undefined
      }
      const product = json?.product
      const right =
        answer.status === 200 &&
        product !== undefined &&
        ["id", "name", "price", "stock", "updated_at"].every((key) => product[key] === expected[key])
      const hit = answer.xcache === "HIT"
      // The header and the body must say the same.
      const consistent = json === undefined ? false : hit === (json.from_cache === true)
      return { ...answer, right, hit, consistent, from_cache: json?.from_cache }
    }

    let t0 = NaN
    let stop = false
    const loop = (async () => {
      let next = performance.now()
      while (!stop) {
        const answer = check(await timedGet(service.port, path))
        reads.push(answer)
        next += 5
        const wait = next - performance.now()
        if (wait > 0) await sleep(wait)
        else next = performance.now()
      }
    })()

    try {
      await sleep(500) // a baseline of hits before the trigger
      const hitsBefore = reads.filter((r) => r.hit).length
      t0 = performance.now()
      if (trigger === "failover") await setup.sentinels[0].admin.call("SENTINEL", "FAILOVER", name)
      else setup.master.child.kill("SIGKILL")
      // Until every Sentinel names the replica, and then a second of unbroken hits (at most 25 s).
      const deadline = t0 + 25_000
      const replicaNamed = async () => {
        const named = await Promise.all(
          setup.sentinels.map((s) => s.admin.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name).catch(() => null))
        )
        return named.every((n) => Array.isArray(n) && Number(n[1]) === setup.replica.port)
      }
      while (performance.now() < deadline) {
        const after = reads.filter((r) => r.started >= t0)
        const lastMiss = lastIndex(after, (r) => !r.hit)
        const streakMs =
          after.length === 0 ? 0 : after[after.length - 1].ended - (after[lastMiss + 1]?.started ?? Infinity)
        if (!Number.isNaN(switchedAt) && streakMs >= 1000 && (await replicaNamed())) break
        await sleep(50)
      }
      stop = true
      await loop
      const timedOut = performance.now() >= deadline

      const after = reads.filter((r) => r.started >= t0)
      const lastMissAt = lastIndex(after, (r) => !r.hit)
      const misses = after.filter((r) => !r.hit)
      // Reads are hits again once the last read answered from the database is behind: the first hit after it.
      // Without any miss, the first hit issued after the Sentinels announced the new master.
      const recoveryRead = lastMissAt >= 0 ? after[lastMissAt + 1] : after.find((r) => r.hit && r.started >= switchedAt)
      const newMaster = client(setup.replica.port)
      const newMasterRole = fields(await newMaster.info("replication")).role
      const entryOnNewMaster = (await newMaster.exists(`product:id:${id}`)) === 1
      newMaster.disconnect()
      // Sentinel turns a live old master into a replica only once it sees it again (its INFO poll): observed, not
      // waited on by the reads, so a slow demotion is reported rather than failed.
      const oldMasterRole =
        trigger === "kill"
          ? "killed"
          : await poll(
              "old master demoted",
              async () => fields(await setup.master.admin.info("replication")).role,
              (role) => role === "slave",
              20_000
            ).then(
              (role) => `${role} after ${fmt(performance.now() - t0, 0)} ms`,
              () => "still master 20 s after the trigger"
            )
      const wrong = after.filter((r) => !r.right || !r.consistent)
      return {
        trigger,
        rep,
        reads_before_trigger_hits: hitsBefore,
        reads_after_trigger: after.length,
        switch_master_ms: switchedAt - t0,
        switch_message: switchMessage,
        recovered_ms: recoveryRead === undefined ? NaN : recoveryRead.ended - t0,
        first_miss_ms: misses.length ? misses[0].started - t0 : null,
        last_miss_ms: misses.length ? misses[misses.length - 1].ended - t0 : null,
        misses: misses.length,
        misses_by_header: Object.fromEntries(
          [...new Set(misses.map((r) => r.xcache ?? "(none)"))].map((h) => [
            h,
            misses.filter((r) => r.xcache === h).length
          ])
        ),
        misses_from_cache_false: misses.filter((r) => r.from_cache === false).length,
        slowest_ms: Math.max(...after.map((r) => r.ended - r.started)),
        p99_ms: percentile(
          after.map((r) => r.ended - r.started),
          99
        ),
        non200: after.filter((r) => r.status !== 200).length,
        wrong_or_inconsistent: wrong.length,
        wrong_examples: wrong.slice(0, 5).map((r) => ({
          at_ms: r.started - t0,
          status: r.status,
          xcache: r.xcache,
          error: r.error,
          body: r.body?.slice(0, 300)
        })),
        new_master_role: newMasterRole,
        entry_on_new_master: entryOnNewMaster,
        old_master_role: oldMasterRole,
        timed_out: timedOut
      }
    } finally {
      stop = true
      await loop
    }
  } finally {
    watcher.disconnect()
    await stopService(service)
    await stopRedis(setup.servers)
  }
}

const partTwo = async () => {
  const results = []
  for (let rep = 1; rep <= failovers; rep++)
    for (const trigger of /** @type {const} */ (["failover", "kill"])) {
      const result = { ...(await failoverOnce(trigger, rep)), loadavg_1m: loadavg()[0] }
      results.push(result)
      console.log(
        `${trigger.padEnd(8)} #${rep}: switch-master at ${fmt(result.switch_master_ms, 0)} ms, hits again at ${fmt(result.recovered_ms, 0)} ms, ` +
          `${result.misses} misses (X-Cache ${JSON.stringify(result.misses_by_header)}), slowest ${fmt(result.slowest_ms, 1)} ms, ` +
          `${result.reads_after_trigger} reads, non-200 ${result.non200}, wrong ${result.wrong_or_inconsistent}` +
          (result.timed_out ? "  (TIMED OUT)" : "")
      )
    }
  return results
}

// ---------------------------------------------------------------- report

/** The median of the finite values; "(n of N)" when a repetition never recovered (NaN). */
const finiteMedian = (values) => {
  const finite = values.filter(Number.isFinite)
  const text = finite.length === 0 ? "none" : fmt(median(finite), 0)
  return finite.length === values.length ? text : `${text} (${finite.length} of ${values.length} recovered)`
}

const tables = (one, rawWaitResult, two) => {
  const lines = []
  lines.push(
    `### PUT and GET-hit, one Redis vs Sentinel (WAIT 1), ${seconds} s × ${rounds} rounds each, alternating (median [min–max])`,
    "",
    "| request | topology | req/s | p50 ms | p99 ms | non-2xx | cache errors |",
    "|---|---|---|---|---|---|---|"
  )
  const cell = (m, digits) => `${fmt(m.median, digits)} [${fmt(m.min, digits)}–${fmt(m.max, digits)}]`
  for (const row of one)
    lines.push(
      `| ${{ put: `PUT, ${conns} conns`, put1: "PUT, 1 conn", get: `GET hit, ${conns} conns` }[row.kind]} | ${row.topology === "single" ? "one Redis (REDIS_URL)" : "Sentinel, 1 replica"} | ${cell(row.rps, 0)} | ${cell(row.p50_ms, 2)} | ${cell(row.p99_ms, 2)} | ${row.non2xx + row.socket_errors} | ${row.cache_errors} |`
    )
  lines.push(
    "",
    `Raw, straight to the Sentinel master (sequential, ${rawWaitResult.count} each): SET p50 ${fmt(rawWaitResult.set.p50_ms, 3)} ms / p99 ${fmt(rawWaitResult.set.p99_ms, 3)} ms; SET + WAIT 1 100 p50 ${fmt(rawWaitResult.set_wait.p50_ms, 3)} ms / p99 ${fmt(rawWaitResult.set_wait.p99_ms, 3)} ms`,
    "",
    "### Failover under a read every ~5 ms (ms from the trigger)",
    "",
    "| trigger | rep | +switch-master | hits again | (after switch) | reads from DB (MISS) | slowest read | reads | non-200 | wrong value |",
    "|---|---|---|---|---|---|---|---|---|---|"
  )
  for (const r of two)
    lines.push(
      `| ${r.trigger === "failover" ? "SENTINEL FAILOVER" : "master SIGKILL"} | ${r.rep} | ${fmt(r.switch_master_ms, 0)} | ${fmt(r.recovered_ms, 0)} | ${fmt(r.recovered_ms - r.switch_master_ms, 0)} | ${r.misses} | ${fmt(r.slowest_ms, 1)} | ${r.reads_after_trigger} | ${r.non200} | ${r.wrong_or_inconsistent} |`
    )
  for (const trigger of ["failover", "kill"]) {
    const rs = two.filter((r) => r.trigger === trigger)
    lines.push(
      `| **${trigger === "failover" ? "SENTINEL FAILOVER" : "master SIGKILL"}** | **median** | ${fmt(median(rs.map((r) => r.switch_master_ms)), 0)} | ${finiteMedian(rs.map((r) => r.recovered_ms))} | ${finiteMedian(rs.map((r) => r.recovered_ms - r.switch_master_ms))} | ${median(rs.map((r) => r.misses))} | ${fmt(median(rs.map((r) => r.slowest_ms)), 1)} | ${median(rs.map((r) => r.reads_after_trigger))} | ${rs.reduce((s, r) => s + r.non200, 0)} (total) | ${rs.reduce((s, r) => s + r.wrong_or_inconsistent, 0)} (total) |`
    )
  }
  return lines.join("\n")
}

const main = async () => {
  ensureWrk()
  freezeBuild()
  const commit = spawnSync("git", ["-C", root, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim()
  const dirty =
    spawnSync("git", ["-C", root, "status", "--porcelain", "src"], { encoding: "utf8" }).stdout.trim() !== ""
  const startedAt = new Date().toISOString()
  console.log(`build of ${commit}${dirty ? " (src/ has uncommitted changes)" : ""}, temp ${tmp}`)
  const { raw, raw_wait } = await partOne()
  const one = summariseOne(raw)
  const two = await partTwo()
  const report = tables(one, raw_wait, two)
  const results = {
    started_at: startedAt,
    commit,
    src_dirty: dirty,
    machine: { node: process.version, redis: versionOf("redis-server", ["--version"]), wrk: versionOf("wrk", ["-v"]) },
    settings: { rounds, seconds, conns, failovers, cache_timeout: "200ms (default), so WAIT 1 100" },
    wait: { summary: one, raw, raw_wait },
    failover: two
  }
  mkdirSync(join(benchDir, "results"), { recursive: true })
  writeFileSync(join(benchDir, "results", "topology.json"), JSON.stringify(results, null, 2) + "\n")
  console.log(`\n${report}\n\nwritten: bench/results/topology.json`)
  const bad = two.filter((r) => r.non200 > 0 || r.wrong_or_inconsistent > 0 || r.timed_out)
  if (bad.length > 0) {
    console.log(`\n!!! ${bad.length} failover repetition(s) with a non-200, a wrong value or a timeout:`)
    for (const r of bad) console.log(JSON.stringify(r, null, 1))
    process.exitCode = 1
  }
}

try {
  await main()
} finally {
  agent.destroy()
  await stopAll("redis-server")
  if (process.env.BENCH_KEEP_TMP !== "1") rmSync(tmp, { recursive: true, force: true })
}
