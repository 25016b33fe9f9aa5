import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import { keepAliveAgent, product, create, eventually, statusLines, promptExitMillis } from "../support/ProcessSuite.js"
import * as RedisServer from "../support/RedisServer.js"
import {
  awaitExit,
  call,
  completeResponses,
  rawConnect,
  rawGet,
  request,
  sleep,
  boundWithStart,
  startService
} from "../support/ServiceProcess.js"
import type { RawConnection } from "../support/ServiceProcess.js"

// The real service as a child process: graceful shutdown on SIGTERM and SIGINT, with idle, in-flight, half-read and
// slow requests.

interface SqliteDatabase {
  prepare(sql: string): { get(...params: Array<unknown>): unknown }
  close(): void
}
const require = createRequire(import.meta.url)
const Sqlite = require("better-sqlite3") as new (file: string, options?: { readonly?: boolean }) => SqliteDatabase

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
      boundWithStart(30_000)
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
      boundWithStart(30_000)
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
      boundWithStart(30_000)
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
      boundWithStart(30_000)
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
      boundWithStart(30_000)
    )
  })
})
