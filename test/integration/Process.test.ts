import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import * as Fs from "node:fs/promises"
import * as Http from "node:http"
import { createRequire } from "node:module"
import * as Path from "node:path"
import * as InvalidConfig from "../support/InvalidConfig.js"
import * as RedisServer from "../support/RedisServer.js"
import {
  awaitExit,
  call,
  completeResponses,
  connectOnceListening,
  rawConnect,
  rawGet,
  request,
  sleep,
  spawnService,
  startService
} from "../support/ServiceProcess.js"
import type { RawConnection, ServiceProcess } from "../support/ServiceProcess.js"

// The real service as a child process: start-up with and without Redis, configuration errors, graceful shutdown.

interface SqliteDatabase {
  prepare(sql: string): { get(...params: Array<unknown>): unknown }
  close(): void
}
const require = createRequire(import.meta.url)
const Sqlite = require("better-sqlite3") as new (file: string, options?: { readonly?: boolean }) => SqliteDatabase

const keepAliveAgent = Effect.acquireRelease(
  Effect.sync(() => new Http.Agent({ keepAlive: true, maxSockets: 1 })),
  (agent) => Effect.sync(() => agent.destroy())
)

const product = { name: "Laptop", description: "High-performance laptop", price: 999.99, stock: 50 }

const create = (service: ServiceProcess, agent?: Http.Agent) =>
  Effect.tap(call(service.port, "POST", "/api/v1/products", { json: product, ...(agent ? { agent } : {}) }), (reply) =>
    expect(reply.status, reply.text).toBe(201)
  )

/** Polls until `check` holds; dies with the last value otherwise. */
const eventually = <A>(get: () => Promise<A>, check: (a: A) => boolean, timeoutMs: number) =>
  Effect.promise(async () => {
    const deadline = performance.now() + timeoutMs
    let last = await get()
    while (!check(last)) {
      if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms; last: ${JSON.stringify(last)}`)
      await sleep(100)
      last = await get()
    }
    return last
  }).pipe(Effect.orDie)

const connectAll = (port: number, count: number) =>
  Effect.promise(() => Promise.all(Array.from({ length: count }, () => rawConnect(port))))

/** What each connection received until it closed, or until `timeoutMs` if it stays open. */
const receivedUntilClosed = (connections: ReadonlyArray<RawConnection>, timeoutMs: number) =>
  Effect.promise(() =>
    Promise.all(
      connections.map((c) =>
        Promise.race([c.closed, sleep(timeoutMs).then(() => ({ text: c.received(), error: "still open" }))])
      )
    )
  )

/** The status lines of the responses in `text` (a body ends without CRLF, so the next one may follow it directly). */
const statusLines = (text: string) => text.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? []

/** Long, so that a reply that waited for it stands out however loaded the machine is. */
const cacheTimeoutMillis = 5_000

/**
 * What "promptly" means for a shutdown: an exit that waited for something (a connection's keep-alive timeout, 5 s in
 * Node; the drain's grace for in-flight requests) would take longer. Generous on purpose: other processes start
 * beside these on two cores.
 */
const promptExitMillis = 5_000

/** Bytes sent to whoever listens on `port` that it has not read yet: commands a frozen Redis has not seen. */
const unreadBy = (port: number) =>
  Fs.readFile("/proc/net/tcp", "utf8").then((table) =>
    table
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields.length > 4 && parseInt(fields[1]!.split(":")[1]!, 16) === port)
      .reduce((unread, fields) => unread + parseInt(fields[4]!.split(":")[1]!, 16), 0)
  )

describe("service process", () => {
  it.scopedLive(
    "starts and serves with no Redis: degraded, reads from the database, errors counted, fast; creates DB_PATH's folder",
    () =>
      Effect.gen(function* () {
        const service = yield* startService({
          dbPath: (dir) => Path.join(dir, "a", "b", "c", "products.db"),
          env: { CACHE_TIMEOUT: `${cacheTimeoutMillis}ms` }
        })
        expect(existsSync(service.dbPath)).toBe(true)
        const agent = yield* keepAliveAgent
        const replies = []

        const health = yield* call(service.port, "GET", "/health", { agent })
        replies.push(health)
        expect(health.status).toBe(200)
        expect(health.body).toMatchObject({ status: "degraded", checks: { database: "up", cache: "down" } })

        const created = yield* create(service, agent)
        replies.push(created)
        const path = `/api/v1/products/${created.body.product.id}`
        for (const _ of [1, 2]) {
          const read = yield* call(service.port, "GET", path, { agent })
          replies.push(read)
          expect(read.status).toBe(200)
          expect(read.body).toMatchObject({ product: { ...product, id: created.body.product.id }, from_cache: false })
        }
        const list = yield* call(service.port, "GET", "/api/v1/products", { agent })
        replies.push(list)
        expect(list.body).toMatchObject({ total: 1, from_cache: false })

        const stats = yield* call(service.port, "GET", "/api/v1/cache/stats", { agent })
        replies.push(stats)
        expect(stats.body.cache_stats).toMatchObject({ hits: 0, misses: 0, total_gets: 0, sets: 0 })
        expect(stats.body.cache_stats.errors).toBeGreaterThan(0)

        // A request that waited for the cache's timeout would take all of it: an absent Redis is not waited for.
        for (const reply of replies) expect(reply.millis, reply.text).toBeLessThan(cacheTimeoutMillis / 2)
      }),
    30_000
  )

  it.scopedLive(
    "started while Redis is down, resumes caching by itself once Redis comes up",
    () =>
      Effect.gen(function* () {
        const redis = yield* RedisServer.make()
        yield* redis.stop
        const service = yield* startService({ env: { REDIS_URL: redis.url } })
        const health = yield* call(service.port, "GET", "/health")
        expect(health.body).toMatchObject({ status: "degraded", checks: { cache: "down" } })
        const created = yield* create(service)
        const path = `/api/v1/products/${created.body.product.id}`
        expect((yield* call(service.port, "GET", path)).body.from_cache).toBe(false)

        yield* redis.start
        const back = performance.now()
        yield* eventually(
          () => request(service.port, "GET", "/health"),
          (reply) => reply.status === 200 && reply.body.status === "healthy",
          10_000
        )
        expect(performance.now() - back).toBeLessThan(10_000)

        const miss = yield* call(service.port, "GET", path)
        expect([miss.body.from_cache, miss.headers["x-cache"]]).toEqual([false, "MISS"])
        const hit = yield* call(service.port, "GET", path)
        expect([hit.body.from_cache, hit.headers["x-cache"]]).toEqual([true, "HIT"])
        expect(hit.body.product).toMatchObject({ ...product, id: created.body.product.id })
        const stats = yield* call(service.port, "GET", "/api/v1/cache/stats")
        expect(stats.body.cache_stats.hits).toBeGreaterThanOrEqual(1)
        expect(stats.body.cache_stats.misses).toBeGreaterThanOrEqual(1)
      }),
    40_000
  )

  // Concurrent: these only wait for processes to start; five tsx starts on two cores take a while.
  describe.concurrent("start-up", () => {
    it.scopedLive(
      "answers a request sent as soon as the port accepts connections (with Redis up)",
      () =>
        Effect.gen(function* () {
          const redis = yield* RedisServer.make()
          const service = yield* spawnService({ env: { REDIS_URL: redis.url } })
          const connection = yield* Effect.promise(() => connectOnceListening(service, 40_000))
          const accepted = performance.now()
          connection.socket.write(rawGet("/health"))
          yield* Effect.promise(async () => {
            while (completeResponses(connection.received()) === 0 && performance.now() - accepted < 10_000)
              await sleep(20)
          })
          const log = service.output()
          expect(statusLines(connection.received()), `no answer 10 s after the port accepted it\n${log}`).toEqual([
            "HTTP/1.1 200 OK"
          ])
        }),
      60_000
    )

    // Several bad variables per process (test/support/InvalidConfig.ts): each must be named, and nothing opened.
    for (const batch of InvalidConfig.processes()) {
      const settings = batch.flatMap((row) =>
        Object.entries(row.env).map(([name, value]) => `${name}=${JSON.stringify(value)}`)
      )
      it.scopedLive(
        `invalid configuration stops the start with exit code 1, naming each variable: ${settings.join(" ")}`,
        () =>
          Effect.gen(function* () {
            const service = yield* spawnService({ env: Object.assign({}, ...batch.map((row) => row.env)) })
            // Generous: these start together on two cores, and tsx alone takes seconds to load Effect.
            const exit = yield* awaitExit(service, 40_000)
            const output = service.output()
            expect(exit.code, output).toBe(1)
            for (const row of batch) expect(output).toContain(`Invalid data at ${row.name}: `)
            // It stopped before opening anything: no database file in its folder, no port.
            expect(yield* Effect.promise(() => Fs.readdir(service.dir))).toEqual([])
            expect(output).not.toContain("Listening on")
          }),
        60_000
      )
    }
  })

  describe("graceful shutdown", () => {
    it.scopedLive(
      "SIGTERM with an idle keep-alive connection: exits 0 promptly, having quit Redis and closed the database",
      () =>
        Effect.gen(function* () {
          const redis = yield* RedisServer.make()
          const service = yield* startService({ env: { REDIS_URL: redis.url } })
          const agent = yield* keepAliveAgent
          const health = yield* call(service.port, "GET", "/health", { agent })
          expect(health.body).toMatchObject({ status: "healthy", checks: { cache: "up", database: "up" } })
          const created = yield* create(service, agent)
          const id: number = created.body.product.id
          expect((yield* call(service.port, "GET", `/api/v1/products/${id}`, { agent })).status).toBe(200)
          const idle = Object.values(agent.freeSockets).flat()
          expect(idle).toHaveLength(1)

          // Every Redis client but the connection asking.
          const serviceClients = Effect.map(redis.command("CLIENT", "LIST"), (list) =>
            String(list)
              .split("\n")
              .filter((line) => line.trim() !== "" && !line.includes("cmd=client|list"))
          )
          const quits = Effect.map(redis.command("INFO", "commandstats"), (info) =>
            Number(/cmdstat_quit:calls=(\d+)/.exec(String(info))?.[1] ?? 0)
          )
          expect(yield* serviceClients).toHaveLength(1)
          const quitsBefore = yield* quits

          const sent = performance.now()
          service.child.kill("SIGTERM")
          const exit = yield* awaitExit(service, 10_000)
          expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
          expect(exit.at - sent).toBeLessThan(promptExitMillis)
          expect(idle[0]!.destroyed).toBe(true)

          expect(yield* serviceClients).toEqual([])
          // The INFO connection above sent one QUIT itself; the service must have sent the other.
          expect((yield* quits) - quitsBefore, "the service did not QUIT its Redis connection").toBeGreaterThanOrEqual(
            2
          )

          const wal = yield* Effect.promise(() => Fs.stat(`${service.dbPath}-wal`).catch(() => undefined))
          expect(wal?.size ?? 0, "a non-empty -wal file: the database was not closed").toBe(0)
          const db = new Sqlite(service.dbPath, { readonly: true })
          try {
            expect(db.prepare("SELECT name, price FROM products WHERE id = ?").get(id)).toEqual({
              name: product.name,
              price: product.price
            })
          } finally {
            db.close()
          }
        }),
      30_000
    )

    it.scopedLive(
      "SIGINT with an idle keep-alive connection: exits 0 promptly",
      () =>
        Effect.gen(function* () {
          const service = yield* startService()
          const agent = yield* keepAliveAgent
          expect((yield* call(service.port, "GET", "/api/v1/products", { agent })).status).toBe(200)
          expect(Object.values(agent.freeSockets).flat()).toHaveLength(1)

          const sent = performance.now()
          service.child.kill("SIGINT")
          const exit = yield* awaitExit(service, 10_000)
          expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
          expect(exit.at - sent).toBeLessThan(promptExitMillis)
        }),
      30_000
    )

    it.scopedLive(
      "answers every request already sent: 20 fresh connections and one in flight on a keep-alive connection",
      () =>
        Effect.gen(function* () {
          const service = yield* startService()
          yield* create(service)
          const [keptAlive] = yield* connectAll(service.port, 1)
          keptAlive!.socket.write(rawGet("/api/v1/products"))
          yield* eventually(
            () => Promise.resolve(keptAlive!.received()),
            (text) => completeResponses(text) === 1,
            5000
          )
          const fresh = yield* connectAll(service.port, 20)

          // All in one tick: the requests are in the kernel's buffers before the signal is sent.
          for (const connection of fresh) connection.socket.write(rawGet("/api/v1/products"))
          keptAlive!.socket.write(rawGet("/api/v1/products/1"))
          const sent = performance.now()
          service.child.kill("SIGTERM")

          const results = yield* receivedUntilClosed(fresh, 10_000)
          const [keptAliveResult] = yield* receivedUntilClosed([keptAlive!], 10_000)
          const exit = yield* awaitExit(service, 10_000)
          const unanswered = results.filter((result) => statusLines(result.text)[0] !== "HTTP/1.1 200 OK")
          expect(unanswered.length, `fresh connections unanswered, e.g. ${JSON.stringify(unanswered[0])}`).toBe(0)
          for (const result of results) expect(completeResponses(result.text)).toBe(1)
          expect(statusLines(keptAliveResult!.text), JSON.stringify(keptAliveResult)).toEqual([
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK"
          ])
          expect(completeResponses(keptAliveResult!.text)).toBe(2)
          expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
          expect(exit.at - sent).toBeLessThan(promptExitMillis)
        }),
      30_000
    )

    it.scopedLive(
      "a slow request in flight (its Redis lookup waiting on a frozen Redis) is answered before the exit",
      () =>
        Effect.gen(function* () {
          const redis = yield* RedisServer.make()
          const cacheTimeout = 2_000
          const service = yield* startService({ env: { REDIS_URL: redis.url, CACHE_TIMEOUT: `${cacheTimeout}ms` } })
          const created = yield* create(service)
          yield* redis.freeze
          const read = request(service.port, "GET", `/api/v1/products/${created.body.product.id}`)
          // The service has sent its lookup to the frozen Redis: the request is in flight and will wait on it.
          yield* eventually(
            () => unreadBy(redis.port),
            (unread) => unread > 0,
            10_000
          )
          const sent = performance.now()
          service.child.kill("SIGTERM")
          const reply = yield* Effect.promise(() => read)
          const answered = performance.now()
          const exit = yield* awaitExit(service, 15_000)
          expect(reply.status, reply.text).toBe(200)
          expect(reply.body).toMatchObject({ product: { id: created.body.product.id }, from_cache: false })
          // It was slow: it waited out the command timeout, most of it after the signal.
          expect(reply.millis).toBeGreaterThanOrEqual(cacheTimeout)
          expect(answered).toBeGreaterThan(sent)
          expect(exit.at).toBeGreaterThanOrEqual(answered)
          expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
        }),
      30_000
    )

    it.scopedLive(
      "answers requests on connections the kernel accepted while the process was not running (SIGSTOP)",
      () =>
        Effect.gen(function* () {
          const service = yield* startService()
          service.child.kill("SIGSTOP")
          // The kernel completes these handshakes and buffers the requests; the stopped process has read nothing.
          const connections = yield* connectAll(service.port, 20)
          for (const connection of connections) connection.socket.write(rawGet("/api/v1/products"))
          yield* Effect.promise(() => sleep(100))
          service.child.kill("SIGTERM")
          service.child.kill("SIGCONT")
          const sent = performance.now()

          const results = yield* receivedUntilClosed(connections, 10_000)
          const exit = yield* awaitExit(service, 10_000)
          const unanswered = results.filter((result) => statusLines(result.text)[0] !== "HTTP/1.1 200 OK")
          expect(unanswered.length, `connections unanswered, e.g. ${JSON.stringify(unanswered[0])}`).toBe(0)
          expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
          expect(exit.at - sent).toBeLessThan(promptExitMillis)
        }),
      30_000
    )
  })

  describe("WORKERS=2 (cluster mode)", () => {
    it.scopedLive(
      "two worker processes on one port: one cache and one set of counters; SIGTERM stops them all, exit 0",
      () =>
        Effect.gen(function* () {
          const redis = yield* RedisServer.make()
          const service = yield* startService({ env: { REDIS_URL: redis.url, WORKERS: "2" } })
          const workerPids = () =>
            Fs.readFile(`/proc/${service.child.pid}/task/${service.child.pid}/children`, "utf8").then((text) =>
              text.trim().split(/\s+/).filter(Boolean)
            )
          yield* eventually(workerPids, (pids) => pids.length === 2, 20_000)
          // Both listening: the second one logs its address too.
          yield* eventually(
            () => Promise.resolve(service.output().split("Listening on").length - 1),
            (count) => count === 2,
            20_000
          )
          const created = yield* create(service)
          const path = `/api/v1/products/${created.body.product.id}`
          // A fresh connection each: the primary hands connections to the workers in turn.
          const reads = []
          for (let i = 0; i < 8; i++) reads.push(yield* call(service.port, "GET", path))
          expect(reads.map((read) => read.body.from_cache)).toEqual([false, true, true, true, true, true, true, true])
          // Generated request ids start with a per-process prefix: both workers answered.
          const servedBy = new Set(reads.map((read) => String(read.headers["x-request-id"]).split("-")[0]))
          expect(servedBy.size).toBe(2)
          const stats = (yield* call(service.port, "GET", "/api/v1/cache/stats")).body.cache_stats
          expect(stats).toMatchObject({ hits: 7, misses: 1, sets: 1, total_gets: 8 })
          const reset = (yield* call(service.port, "POST", "/api/v1/cache/stats/reset")).body.cache_stats
          expect(reset.total_gets).toBe(0)
          const again = (yield* call(service.port, "GET", "/api/v1/cache/stats")).body.cache_stats
          expect(again.total_gets).toBe(0)

          const pids = yield* Effect.promise(workerPids)
          service.child.kill("SIGTERM")
          const exit = yield* awaitExit(service, 15_000)
          expect(exit.code).toBe(0)
          for (const pid of pids) expect(() => process.kill(Number(pid), 0)).toThrow()
        }),
      60_000
    )
  })
})
