import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Context, Duration, Effect, Either, Layer } from "effect"
import * as Net from "node:net"
import * as AppConfig from "../../src/AppConfig.js"
import { boundWithStart, rawConnect, rawGet, request, sleep, startService } from "../support/ServiceProcess.js"
import type { RawConnection, ServiceProcess } from "../support/ServiceProcess.js"

// Clients that take their time or take every connection, against the real process configured through its variables.

const env = { HOST: "127.0.0.1", HEADERS_TIMEOUT: "1s", REQUEST_TIMEOUT: "4s", MAX_CONNECTIONS: "4" }

class Service extends Context.Tag("test/Service")<Service, ServiceProcess>() {}

/** Writes `first`, then `unit` every 100 ms for at most `maxMillis`, until the server closes the connection. */
const trickle = (port: number, first: string, unit: string, maxMillis: number) =>
  Effect.promise(async () => {
    const connection = await rawConnect(port)
    const started = performance.now()
    connection.socket.write(first)
    let open = true
    void connection.closed.then(() => (open = false))
    while (open && performance.now() - started < maxMillis) {
      await sleep(100)
      if (open) connection.socket.write(unit)
    }
    const closedAfter = open ? undefined : performance.now() - started
    connection.socket.destroy()
    return { closedAfter, received: connection.received() }
  })

const expect408 = (received: string) => {
  expect(received).toMatch(/^HTTP\/1\.1 408 /)
  expect(received).toMatch(/\r\nconnection: close\r\n/i)
  expect(JSON.parse(received.slice(received.indexOf("\r\n\r\n") + 4))).toEqual({
    error: "request_timeout",
    message: "the request was not received in time"
  })
}

/** A keep-alive connection that has had one answer, so it now sits open between requests. */
const heldOpen = (port: number) =>
  Effect.promise(async () => {
    const connection = await rawConnect(port)
    connection.socket.write(rawGet("/health"))
    while (!connection.received().includes("\r\n\r\n")) await sleep(10)
    return connection
  })

const answerOn = (connection: RawConnection, path: string) =>
  Effect.promise(async () => {
    const before = connection.received().length
    connection.socket.write(rawGet(path))
    const deadline = performance.now() + 5_000
    while (!connection.received().slice(before).includes("\r\n\r\n") && performance.now() < deadline) await sleep(10)
    return connection.received().slice(before)
  })

layer(Layer.scoped(Service, startService({ env })), { timeout: Duration.millis(boundWithStart(30_000)) })(
  "slow and greedy clients (HOST, HEADERS_TIMEOUT, REQUEST_TIMEOUT, MAX_CONNECTIONS)",
  (it) => {
    it.effect("HOST=127.0.0.1 listens there only: another loopback address is refused", () =>
      Effect.gen(function* () {
        const service = yield* Service
        expect(service.output()).toContain(`Listening on http://127.0.0.1:${service.port}`)
        const elsewhere = yield* Effect.promise(
          () =>
            new Promise<string>((resolve) => {
              const socket = Net.connect({ host: "127.0.0.2", port: service.port })
              socket.once("connect", () => {
                resolve("connected")
                socket.destroy()
              })
              socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
            })
        )
        expect(elsewhere).toBe("ECONNREFUSED")
      })
    )

    it.effect("headers trickled one line every 100 ms: cut with a 408 after HEADERS_TIMEOUT (1 s)", () =>
      Effect.gen(function* () {
        const service = yield* Service
        const { closedAfter, received } = yield* trickle(
          service.port,
          "GET /health HTTP/1.1\r\nHost: x\r\n",
          "X-Slow: 1\r\n",
          8_000
        )
        expect(closedAfter, "still open when the trickle ended").toBeDefined()
        expect(closedAfter!).toBeGreaterThanOrEqual(900)
        expect(closedAfter!, "cut by the request timeout, not the header timeout").toBeLessThan(3_500)
        expect408(received)
      })
    )

    it.effect("a body trickled one byte every 100 ms: cut with a 408 after REQUEST_TIMEOUT (4 s), not before", () =>
      Effect.gen(function* () {
        const service = yield* Service
        const headers = "POST /api/v1/products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        const { closedAfter, received } = yield* trickle(
          service.port,
          `${headers}Content-Length: 1000\r\n\r\n{`,
          " ",
          8_000
        )
        expect(closedAfter, "still open when the trickle ended").toBeDefined()
        // The headers were complete at once: the header timeout (1 s) must not be what cut it.
        expect(closedAfter!).toBeGreaterThanOrEqual(3_900)
        expect408(received)
      })
    )

    it.effect("MAX_CONNECTIONS=4: a fifth connection is closed unanswered, the four open ones are still served", () =>
      Effect.gen(function* () {
        const service = yield* Service
        const open = yield* Effect.all(Array.from({ length: 4 }, () => heldOpen(service.port)))
        const fifth = yield* Effect.promise(() => rawConnect(service.port))
        fifth.socket.write(rawGet("/health"))
        const refused = yield* Effect.promise(() => Promise.race([fifth.closed, sleep(5_000).then(() => undefined)]))
        expect(refused, "the fifth connection is still open").toBeDefined()
        expect(refused!.text).toBe("")

        for (const connection of open) expect(yield* answerOn(connection, "/health")).toMatch(/^HTTP\/1\.1 200 /)
        // A slot freed is a slot usable, and the refusal was counted.
        open[0]!.socket.destroy()
        const metrics = yield* Effect.promise(async () => {
          for (;;) {
            const reply = await request(service.port, "GET", "/metrics").catch(() => undefined)
            if (reply !== undefined) return reply.text
            await sleep(50)
          }
        }).pipe(Effect.timeout("5 seconds"))
        expect(metrics).toMatch(/^http_dropped_connections_total [1-9]/m)
        for (const connection of open) connection.socket.destroy()
      })
    )
  }
)

describe("the variables", () => {
  const read = (values: Record<string, string>) =>
    Effect.either(
      Effect.withConfigProvider(AppConfig.all, ConfigProvider.fromMap(new Map(Object.entries(values))))
    ).pipe(Effect.map(Either.mapLeft(String)))

  it.effect("defaults: all interfaces, 30 s for a request, 10 s for its headers (or less), 10,000 connections", () =>
    Effect.gen(function* () {
      const server = yield* Effect.withConfigProvider(AppConfig.httpServer, ConfigProvider.fromMap(new Map()))
      expect({
        ...server,
        requestTimeout: Duration.toMillis(server.requestTimeout),
        headersTimeout: Duration.toMillis(server.headersTimeout)
      }).toEqual({
        port: 3000,
        host: undefined,
        requestTimeout: 30_000,
        headersTimeout: 10_000,
        maxConnections: 10_000
      })
      const shortRequests = yield* Effect.withConfigProvider(
        AppConfig.clientTimeouts,
        ConfigProvider.fromMap(new Map([["REQUEST_TIMEOUT", "5s"]]))
      )
      expect(Duration.toMillis(shortRequests.headersTimeout), "the header timeout follows a shorter request one").toBe(
        5_000
      )
    })
  )

  it.effect("a bad value stops the start, naming the variable", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, Record<string, string>]> = [
        ["HOST", { HOST: "not a host" }],
        ["REQUEST_TIMEOUT", { REQUEST_TIMEOUT: "30" }],
        ["HEADERS_TIMEOUT", { HEADERS_TIMEOUT: "0" }],
        ["HEADERS_TIMEOUT", { HEADERS_TIMEOUT: "1m" }],
        ["MAX_CONNECTIONS", { MAX_CONNECTIONS: "0" }],
        ["MAX_CONNECTIONS", { MAX_CONNECTIONS: "many" }],
        // Checks placed after their default once lost the name ("Invalid data at : ...").
        ["WORKERS", { WORKERS: "0" }],
        ["CACHE_PREFIX", { CACHE_PREFIX: "a b" }],
        ["DB_PATH", { DB_PATH: " " }]
      ]
      for (const [name, values] of cases) {
        const result = yield* read(values)
        expect(Either.isLeft(result) ? result.left : "accepted", JSON.stringify(values)).toContain(
          `Invalid data at ${name}`
        )
      }
      for (const host of ["::1", "localhost", "0.0.0.0", "api.internal"]) {
        expect(Either.isRight(yield* read({ HOST: host })), host).toBe(true)
      }
    })
  )
})
