import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync } from "node:fs"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as InvalidConfig from "../support/InvalidConfig.js"
import { keepAliveAgent, product, create, eventually, statusLines } from "../support/ProcessSuite.js"
import * as RedisServer from "../support/RedisServer.js"
import type { RawConnection } from "../support/ServiceProcess.js"
import {
  awaitExit,
  boundWithStart,
  call,
  completeResponses,
  connectOnceListening,
  rawGet,
  request,
  sleep,
  spawnService,
  startBoundMillis,
  startService
} from "../support/ServiceProcess.js"

// The real service as a child process: start-up with and without Redis, configuration errors, WORKERS=2.

/** Long, so that a reply that waited for it stands out however loaded the machine is. */
const cacheTimeoutMillis = 10_000

const testBoundMillis = boundWithStart(60_000)

/** Resolves once `connection` holds a complete response or has closed, whichever comes first. */
const answerOrClose = (connection: RawConnection) =>
  new Promise<void>((done) => {
    // rawConnect's own listener came first: what this chunk brought is already in `received`.
    connection.socket.on("data", () => {
      if (completeResponses(connection.received()) > 0) done()
    })
    void connection.closed.then(() => done())
  })

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
        // One per cache operation that could not be done: the create's two invalidations (product and lists), then for
        // each read the pending invalidation it could not apply before bypassing the cache.
        expect(stats.body.cache_stats).toMatchObject({ hits: 0, misses: 0, total_gets: 0, sets: 0, errors: 2 + 2 + 1 })

        // A request that waited for the cache's timeout would take all of it: an absent Redis is not waited for.
        for (const reply of replies) expect(reply.millis, reply.text).toBeLessThan(cacheTimeoutMillis / 2)
      }),
    testBoundMillis
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

        // By itself: no restart, nothing but the health checks asked of it. The wait is a bound, not a speed.
        yield* redis.start
        yield* eventually(
          () => request(service.port, "GET", "/health"),
          (reply) => reply.status === 200 && reply.body.status === "healthy",
          startBoundMillis
        )

        const miss = yield* call(service.port, "GET", path)
        expect([miss.body.from_cache, miss.headers["x-cache"]]).toEqual([false, "MISS"])
        const hit = yield* call(service.port, "GET", path)
        expect([hit.body.from_cache, hit.headers["x-cache"]]).toEqual([true, "HIT"])
        expect(hit.body.product).toMatchObject({ ...product, id: created.body.product.id })
        // The create's two invalidations and the read's pending one failed while Redis was down; once back, the
        // read that applied the pending invalidation missed and filled, and the next one hit.
        const stats = yield* call(service.port, "GET", "/api/v1/cache/stats")
        expect(stats.body.cache_stats).toMatchObject({ hits: 1, misses: 1, sets: 1, errors: 3 })
      }),
    testBoundMillis
  )

  // One after another: run together, four starts on two cores that other work kept busy took two minutes each, so
  // a start's bound had to cover four. Alone, each waits for its own start only.
  describe("start-up", () => {
    it.scopedLive(
      "answers a request sent as soon as the port accepts connections (with Redis up)",
      () =>
        Effect.gen(function* () {
          const redis = yield* RedisServer.make()
          const service = yield* spawnService({ env: { REDIS_URL: redis.url } })
          const connection = yield* Effect.promise(() => connectOnceListening(service, startBoundMillis))
          const answered = answerOrClose(connection)
          connection.socket.write(rawGet("/health"))
          yield* Effect.promise(() => Promise.race([answered, sleep(startBoundMillis)]))
          const log = service.output()
          expect(statusLines(connection.received()), `no answer to a request the port accepted\n${log}`).toEqual([
            "HTTP/1.1 200 OK"
          ])
        }),
      testBoundMillis
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
            const exit = yield* awaitExit(service, startBoundMillis)
            const output = service.output()
            expect(exit.code, output).toBe(1)
            for (const row of batch) expect(output).toContain(`Invalid data at ${row.name}: `)
            // It stopped before opening anything: no database file in its folder, no port.
            expect(yield* Effect.promise(() => Fs.readdir(service.dir))).toEqual([])
            expect(output).not.toContain("Listening on")
          }),
        testBoundMillis
      )
    }
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
          yield* eventually(workerPids, (pids) => pids.length === 2, startBoundMillis)
          // Both listening: the second one logs its address too.
          yield* eventually(
            () => Promise.resolve(service.output().split("Listening on").length - 1),
            (count) => count === 2,
            startBoundMillis
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
      testBoundMillis
    )
  })
})
