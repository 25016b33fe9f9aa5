import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import * as CuttableLink from "../support/CuttableLink.js"
import * as Databases from "../support/Databases.js"
import * as RedisServer from "../support/RedisServer.js"
import {
  awaitExit,
  awaitReady,
  boundWithStart,
  call,
  freePort,
  spawnService,
  startBoundMillis,
  startService
} from "../support/ServiceProcess.js"
import type { Reply } from "../support/ServiceProcess.js"

// The service as a real process on PostgreSQL: several starting at once on an empty database, a database that is
// not there at start, and one lost and restored under load (through a TCP link the test cuts: the machine's
// PostgreSQL is never stopped, other databases on it are never touched). A password in DATABASE_URL must never be
// shown (trust authentication ignores it, so the tests can give one).

const password = "s3cret-Passw0rd"

const withPassword = (url: string, port?: number) => {
  const parsed = new URL(url)
  parsed.username = parsed.username || "postgres"
  parsed.password = password
  if (port !== undefined) parsed.port = String(port)
  return parsed.href
}

const keepAliveAgent = Effect.acquireRelease(
  Effect.sync(() => new Http.Agent({ keepAlive: true, maxSockets: 4 })),
  (agent) => Effect.sync(() => agent.destroy())
)

const expectNoPassword = (where: string, text: string) => expect(text.includes(password), where).toBe(false)

describe("service process on PostgreSQL", () => {
  it.scopedLive(
    "four processes reaching one empty database at the same moment all start and serve; the migrations ran once",
    () =>
      Effect.gen(function* () {
        const database = yield* Databases.postgres
        // Each process's first connection waits at the link until all four are waiting, then all pass together, as
        // replicas started before their database is up would: their migrators start within a millisecond.
        const link = yield* CuttableLink.make(Number(new URL(database.env.DATABASE_URL!).port || 5432))
        yield* link.hold
        const env = {
          DATABASE_URL: withPassword(database.env.DATABASE_URL!, link.port),
          DB_STATEMENT_TIMEOUT: "30s",
          CACHE_BACKEND: "memory"
        }
        const services = yield* Effect.all(
          Array.from({ length: 4 }, () => spawnService({ env })),
          { concurrency: "unbounded" }
        )
        const deadline = Date.now() + startBoundMillis
        while (link.waiting() < 4 && Date.now() < deadline) yield* Effect.sleep("20 millis")
        expect(link.waiting()).toBe(4)
        yield* link.restore
        yield* Effect.all(
          services.map((service) => awaitReady(service)),
          { concurrency: "unbounded" }
        )
        const migrations = yield* database.execute("SELECT migration_id FROM effect_sql_migrations ORDER BY 1")
        expect(migrations.map((row) => Number(row.migration_id))).toEqual([1, 2, 3, 4])
        const created = yield* call(services[0]!.port, "POST", "/api/v1/products", { json: { name: "P", price: 1 } })
        expect(created.status, created.text).toBe(201)
        for (const service of services) {
          const read = yield* call(service.port, "GET", `/api/v1/products/${created.body.product.id}`)
          expect(read.status, service.output()).toBe(200)
          expectNoPassword("output", service.output())
        }
      }),
    boundWithStart(60_000)
  )

  it.scopedLive(
    "PostgreSQL unreachable at start: retried for DB_START_TIMEOUT, then exit 1 naming DATABASE_URL, never the password",
    () =>
      Effect.gen(function* () {
        const closed = yield* freePort
        const service = yield* spawnService({
          env: {
            DATABASE_URL: `postgres://app:${password}@127.0.0.1:${closed}/catalog`,
            DB_START_TIMEOUT: "2s",
            CACHE_BACKEND: "memory"
          }
        })
        const exit = yield* awaitExit(service, boundWithStart(10_000))
        const output = service.output()
        expect(exit.code, output).toBe(1)
        expect(output).toContain(`DATABASE_URL: PostgreSQL at 127.0.0.1:${closed}/catalog did not answer within 2s`)
        // Retried meanwhile, each attempt said so.
        expect(output.split("PostgreSQL not reachable yet").length - 1, output).toBeGreaterThanOrEqual(2)
        expectNoPassword("output", output)
      }),
    boundWithStart(40_000)
  )

  it.scopedLive(
    "lost under load: writes and misses 503 within the statement timeout, hits from Redis, /health unhealthy; " +
      "restored, everything recovers by itself",
    () =>
      Effect.gen(function* () {
        const database = yield* Databases.postgres
        const redis = yield* RedisServer.make()
        const link = yield* CuttableLink.make(Number(new URL(database.env.DATABASE_URL!).port || 5432))
        const statementTimeoutMillis = 1_000
        const service = yield* startService({
          env: {
            DATABASE_URL: withPassword(database.env.DATABASE_URL!, link.port),
            DB_STATEMENT_TIMEOUT: `${statementTimeoutMillis}ms`,
            REDIS_URL: redis.url
          }
        })
        const agent = yield* keepAliveAgent
        const send = (method: string, path: string, json?: unknown) =>
          call(service.port, method, path, { agent, ...(json === undefined ? {} : { json }) })
        const replies: Array<Reply> = []
        const seen = (reply: Reply) => {
          replies.push(reply)
          return reply
        }

        const ids: Array<number> = []
        for (let n = 0; n < 6; n++)
          ids.push((yield* send("POST", "/api/v1/products", { name: `P${n}`, price: 1 })).body.product.id)
        const hot = ids.slice(0, 3)
        for (const id of hot) yield* send("GET", `/api/v1/products/${id}`)

        // A bound, not a speed: the statement timeout, plus a margin for a loaded two-core machine.
        const bound = statementTimeoutMillis + 1_000
        // Hung first (a partition: nothing answers, nothing closes), then cut (the server down: connections refused).
        for (const lose of [link.hang, link.cut]) {
          yield* lose
          for (let round = 0; round < 2; round++) {
            for (const id of hot) {
              const hit = seen(yield* send("GET", `/api/v1/products/${id}`))
              expect(hit.status, hit.text).toBe(200)
              expect(hit.body.from_cache).toBe(true)
              expect(hit.millis).toBeLessThan(bound)
            }
            const [miss, write, create] = yield* Effect.all(
              [
                send("GET", `/api/v1/products/${ids[3 + round]}`),
                send("PUT", `/api/v1/products/${hot[0]}`, { price: 2 + round }),
                send("POST", "/api/v1/products", { name: "New", price: 1 })
              ],
              { concurrency: "unbounded" }
            )
            for (const reply of [miss!, write!, create!]) {
              seen(reply)
              expect(reply.status, reply.text).toBe(503)
              expect(reply.body).toEqual({ error: "unavailable", message: expect.any(String) })
              expect(reply.millis).toBeLessThan(bound)
            }
            const health = seen(yield* send("GET", "/health"))
            expect(health.status).toBe(503)
            expect(health.body).toMatchObject({ status: "unhealthy", checks: { database: "down", cache: "up" } })
            expect(health.millis).toBeLessThan(bound)
          }
        }

        yield* link.restore
        const deadline = Date.now() + 15_000
        let healthy = false
        while (!healthy && Date.now() < deadline) {
          healthy = (yield* send("GET", "/health")).status === 200
          if (!healthy) yield* Effect.sleep("100 millis")
        }
        expect(healthy, service.output()).toBe(true)
        const write = seen(yield* send("PUT", `/api/v1/products/${hot[0]}`, { price: 9 }))
        expect(write.status, write.text).toBe(200)
        const read = seen(yield* send("GET", `/api/v1/products/${hot[0]}`))
        expect(read.body).toMatchObject({ product: { price: 9 }, from_cache: false })
        expect(seen(yield* send("GET", `/api/v1/products/${ids[5]}`)).status).toBe(200)

        // The invalidation listener's loss and its reconnection are logged once each, not at every attempt.
        const count = (text: string) => service.output().split(text).length - 1
        const listenerSettled = (times: number) =>
          Effect.gen(function* () {
            const until = Date.now() + 10_000
            while (count("listener reconnected") < times && Date.now() < until) yield* Effect.sleep("50 millis")
            expect(count("listener reconnected"), service.output()).toBe(times)
          })
        yield* listenerSettled(1)
        expect(count("listener lost"), service.output()).toBe(1)

        // A restart looks like this from the service: the server ends every connection it has (its pool's and its
        // listener's). It reconnects by itself; at most the statement in flight fails.
        yield* database.execute(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        let afterRestart: Reply | undefined
        for (let attempt = 0; attempt < 3 && afterRestart?.status !== 200; attempt++)
          afterRestart = seen(yield* send("PUT", `/api/v1/products/${hot[1]}`, { price: 10 }))
        expect(afterRestart?.status, afterRestart?.text).toBe(200)
        expect((yield* send("GET", `/api/v1/products/${hot[1]}`)).body.product.price).toBe(10)

        yield* listenerSettled(2)
        expect(count("listener lost"), service.output()).toBe(2)

        const metrics = yield* send("GET", "/metrics")
        expectNoPassword("/metrics", metrics.text)
        for (const reply of replies) expectNoPassword(`${reply.status} ${reply.text}`, reply.text)
        expectNoPassword("output", service.output())
        // The failures were logged, naming what failed without the URL's secret.
        expect(service.output()).toContain("database failure")
      }),
    boundWithStart(60_000)
  )
})
