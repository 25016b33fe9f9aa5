// Every server a run can start: its private Redis, the service (as built for production), the node:http + ioredis
// baseline and the Effect hello-world, each on a free port with its own log, SQLite copy and key prefix.
import { spawnSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs"
import { availableParallelism } from "node:os"
import { join, resolve } from "node:path"
import { Redis } from "ioredis"
import { waitReady } from "./http.mjs"
import { createDatabase } from "./postgres.mjs"
import { seed } from "./seed.mjs"
import { benchDir, freePort, have, logTail, root, serverCpu, sleep, spawnChild, wrkCpu } from "./process.mjs"
import { scaleWorkers } from "./settings.mjs"

/** redis-server is found through PATH, as `.ci/run` and the tests find it. */
export const redisServer = "redis-server"

/** A private redis-server named `name` (its own folder and log in `tmp`): one per target, so none shares a keyspace. */
export const startRedis = async ({ taken, tmp, name = "redis" }) => {
  if (!have(redisServer)) {
    throw new Error("redis-server is not on PATH: install it (Debian: `apt-get install -y redis-server`)")
  }
  const port = await freePort(taken)
  const dir = join(tmp, name)
  mkdirSync(dir)
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]
  args.push("--daemonize", "no", "--protected-mode", "yes", "--logfile", join(tmp, `${name}.log`))
  // On the load core, beside wrk: Redis is a service the server under test talks to, as it would be on another
  // machine, and on the servers' core its CPU would be charged to whichever server under test made it busy.
  const child = spawnChild("redis-server", redisServer, args, { cpu: wrkCpu, log: join(tmp, `${name}.stdout.log`) })
  const url = `redis://127.0.0.1:${port}`
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  client.on("error", () => {})
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitState !== undefined) throw new Error(`redis-server exited:\n${logTail(child)}`)
    try {
      await client.connect()
      await client.ping()
      return { child, port, url, client }
    } catch {
      client.disconnect()
      await sleep(100)
    }
  }
  throw new Error(`redis-server not answering on :${port}`)
}

const baseEnv = () => {
  const env = { ...process.env, NODE_ENV: "production" }
  for (const name of ["REDIS_ADDR", "REDIS_URL", "HTTP_PORT", "DB_PATH", "DATABASE_URL", "CACHE_TTL", "CACHE_PREFIX"])
    delete env[name]
  for (const name of ["CACHE_BACKEND", "CACHE_TIMEOUT", "SERVICE_NAME", "WORKERS"]) delete env[name]
  for (const name of ["CACHE_GRACE", "CACHE_REFRESH_AHEAD"]) delete env[name]
  return env
}

const healthy = (json) => json?.status === "healthy"

/**
 * In cluster mode /health answers once the first worker listens; the others start after it. A keep-alive
 * connection stays with the worker that took it, so wrk must not connect before all of them listen: each logs
 * "Listening on ..." (HttpServer.withLogAddress) once its server is up. Bounded.
 */
const waitListening = async (child, workers, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  const count = () =>
    readFileSync(child.log, "utf8")
      .split("\n")
      .filter((l) => l.includes("Listening on")).length
  while (count() < workers) {
    if (child.exitState !== undefined) {
      throw new Error(`${child.label} exited (${JSON.stringify(child.exitState)}) before ready:\n${logTail(child)}`)
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${child.label}: ${count()} of ${workers} workers listening after ${timeoutMs} ms:\n${logTail(child)}`
      )
    }
    await sleep(100)
  }
}

/** The processes `WORKERS=value` serves with; "auto" is one per available core, as the service counts them. */
export const workerCount = (value) => (value === "auto" ? availableParallelism() : value)

/** The service's build: `dist`, or BENCH_DIST (another build's folder, to measure it with this bench). */
const serviceMain = () => resolve(root, process.env.BENCH_DIST || "dist", "main.js")

const startService = async (
  name,
  { port, redisUrl, dbPath, databaseUrl, logDir, ttl, prefix, workers, cpu = serverCpu, extraEnv = {} }
) => {
  /** @type {NodeJS.ProcessEnv} */
  const env = {
    ...baseEnv(),
    ...extraEnv,
    HTTP_PORT: String(port),
    REDIS_URL: redisUrl,
    ...(databaseUrl === undefined ? { DB_PATH: dbPath } : { DATABASE_URL: databaseUrl }),
    CACHE_TTL: ttl,
    CACHE_PREFIX: prefix,
    CACHE_BACKEND: "redis"
  }
  if (workers !== undefined) env.WORKERS = String(workers)
  const log = join(logDir, `${name}.log`)
  const child = spawnChild(name, process.execPath, [serviceMain()], { env, cpu, log })
  await waitReady(child, port, "/health", healthy)
  if (workerCount(workers) > 1) await waitListening(child, workerCount(workers))
  return child
}

/** The service on a database of its own on the machine's PostgreSQL, seeded through its API like the first. */
const startServicePg = async (name, options) => {
  const databaseUrl = await createDatabase(name.replace(/\W/g, "_"))
  const child = await startService(name, { ...options, databaseUrl })
  await seed(options.port, { quiet: true })
  return child
}

const startBaseline = async (name, { port, redisUrl, dbPath, logDir, ttl, prefix }) => {
  /** @type {NodeJS.ProcessEnv} */
  const env = { ...baseEnv(), HTTP_PORT: String(port), REDIS_URL: redisUrl, DB_PATH: dbPath, CACHE_TTL: ttl }
  env.CACHE_PREFIX = prefix
  const child = spawnChild(name, process.execPath, [join(benchDir, "baseline.mjs")], {
    env,
    log: join(logDir, `${name}.log`)
  })
  await waitReady(child, port, "/health", healthy)
  return child
}

const startHello = async (name, { port, logDir }) => {
  const env = { ...baseEnv(), HTTP_PORT: String(port), HELLO_TRACING: "off" }
  const child = spawnChild(name, process.execPath, [join(benchDir, "hello-effect.mjs")], {
    env,
    log: join(logDir, `${name}.log`)
  })
  // It has one route and no /health: readiness is that route answering.
  await waitReady(child, port, "/hello")
  return child
}

/**
 * Every server a scenario can load, by key; `start` receives a free port, a SQLite copy, the Redis URL, the log
 * folder. `stats`: it answers /api/v1/cache/stats. `optional`: a run goes on without it when it does not start.
 */
export const targetSpecs = {
  service: {
    display: "service",
    about: "node dist/main.js, NODE_ENV=production, CACHE_TTL=1h, prefix bench:svc: (seeded through its API)",
    stats: true,
    start: (o) => startService("service", { ...o, ttl: "1h", prefix: "bench:svc:" })
  },
  baseline: {
    display: "baseline",
    about:
      "bench/baseline.mjs (node:http + ioredis with the service's client options + better-sqlite3), " +
      "prefix bench:base:, own SQLite copy",
    stats: true,
    start: (o) => startBaseline("baseline", { ...o, ttl: "1h", prefix: "bench:base:" })
  },
  hello: {
    display: "hello-effect",
    about: "bench/hello-effect.mjs (NodeHttpServer + HttpRouter, GET /hello), tracing off as the service runs",
    stats: false,
    noDb: true,
    // A reference only: a run goes on without it.
    optional: true,
    start: (o) => startHello("hello-effect", o)
  },
  servicePg: {
    display: "service pg",
    about:
      "node dist/main.js on PostgreSQL (DATABASE_URL, a database of its own on the machine's server, seeded through " +
      "its API), NODE_ENV=production, CACHE_TTL=1h, prefix bench:svcpg:",
    stats: true,
    noDb: true,
    // Without a PostgreSQL to reach, the run goes on without its rows (and says so).
    optional: true,
    start: (o) => startServicePg("service-pg", { ...o, ttl: "1h", prefix: "bench:svcpg:" })
  },
  serviceMissPg: {
    display: "service pg",
    about: "the service on PostgreSQL as above, CACHE_TTL=1ms, prefix bench:svcmisspg:, a database of its own",
    stats: true,
    noDb: true,
    optional: true,
    start: (o) => startServicePg("service-miss-pg", { ...o, ttl: "1ms", prefix: "bench:svcmisspg:" })
  },
  serviceMiss: {
    display: "service",
    about: "node dist/main.js, NODE_ENV=production, CACHE_TTL=1ms, prefix bench:svcmiss:, own SQLite copy",
    stats: true,
    start: (o) => startService("service-miss", { ...o, ttl: "1ms", prefix: "bench:svcmiss:" })
  },
  aheadOff: {
    display: "ahead off",
    about: "node dist/main.js, CACHE_TTL=2s, CACHE_REFRESH_AHEAD=false, prefix bench:expire:, own SQLite copy",
    stats: true,
    start: (o) =>
      startService("service-ahead-off", {
        ...o,
        ttl: "2s",
        prefix: "bench:expire:",
        extraEnv: { CACHE_REFRESH_AHEAD: "false" }
      })
  },
  aheadOn: {
    display: "ahead on",
    about:
      "node dist/main.js, CACHE_TTL=2s, CACHE_REFRESH_AHEAD=true (the default), prefix bench:ahead:, own SQLite copy",
    stats: true,
    start: (o) =>
      startService("service-ahead-on", {
        ...o,
        ttl: "2s",
        prefix: "bench:ahead:",
        extraEnv: { CACHE_REFRESH_AHEAD: "true" }
      })
  },
  baselineMiss: {
    display: "baseline",
    about: "bench/baseline.mjs with CACHE_TTL=1ms, prefix bench:basemiss:, own SQLite copy",
    stats: true,
    start: (o) => startBaseline("baseline-miss", { ...o, ttl: "1ms", prefix: "bench:basemiss:" })
  },
  ...Object.fromEntries(
    scaleWorkers.map((n) => [
      `workers${n}`,
      {
        display: `service w=${n}`,
        about:
          `node dist/main.js, WORKERS=${n}${n === "auto" ? ` (${workerCount(n)} here)` : ""}, NODE_ENV=production, ` +
          `CACHE_TTL=1h, prefix bench:w${n}:, own SQLite copy, pinned to no core`,
        stats: true,
        // WORKERS=auto is newer than WORKERS=N: a build that refuses it loses that row, not the run.
        optional: n === "auto",
        start: (o) => startService(`service-w${n}`, { ...o, ttl: "1h", prefix: `bench:w${n}:`, workers: n, cpu: null })
      }
    ])
  )
}

const newestMtime = (dir) => {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

export const checkBuild = () => {
  if (process.env.BENCH_DIST) return console.warn(`measuring the service built in ${serviceMain()}`)
  const main = join(root, "dist/main.js")
  let built
  try {
    built = statSync(main).mtimeMs
  } catch {
    throw new Error("dist/main.js is missing: run `npm run build` first (or `npm run bench`, which builds)")
  }
  if (newestMtime(join(root, "src")) > built) {
    console.warn("warning: src/ has changes newer than dist/main.js; run `npm run build` to measure them")
  }
}

export const gitInfo = () => {
  const git = (...args) => spawnSync("git", ["-C", root, ...args], { encoding: "utf8" }).stdout?.trim() ?? ""
  return { commit: git("rev-parse", "--short", "HEAD"), src_dirty: git("status", "--porcelain", "--", "src") !== "" }
}
