import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Net from "node:net"
import { awaitExit, boundWithStart, call, rawGet, sleep, startService } from "../support/ServiceProcess.js"

// Shutdown under keep-alive traffic: clients that keep sending on their open connections while SIGTERM arrives.

interface LoopClient {
  readonly sent: () => number
  readonly answered: () => number
  /** Whether the last answer said `Connection: close`, i.e. the server told this client to go. */
  readonly told: () => boolean
  /** Resolves once the socket has closed, with its error (a reset) if any. */
  readonly closed: Promise<string | undefined>
}

/**
 * A keep-alive client in a loop: one request at a time, the next one a random 0–`thinkMillis` after each answer,
 * until an answer says `Connection: close`. A pause between requests is what a real client has (parsing, its own
 * work); it is the moment at which a server that closes "idle" connections cuts it while the next request is on
 * its way.
 */
const loopClient = (port: number, path: string, thinkMillis: number): LoopClient => {
  const socket = Net.connect({ host: "127.0.0.1", port })
  let sent = 0
  let answered = 0
  let told = false
  let buffer = ""
  const send = () => {
    if (told || socket.destroyed || !socket.writable) return
    sent++
    socket.write(rawGet(path))
  }
  socket.setEncoding("utf8")
  socket.once("connect", send)
  socket.on("data", (chunk: string) => {
    buffer += chunk
    for (;;) {
      const end = buffer.indexOf("\r\n\r\n")
      if (end < 0) return
      const head = buffer.slice(0, end)
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
      if (buffer.length < end + 4 + length) return
      buffer = buffer.slice(end + 4 + length)
      answered++
      if (/\r\nconnection:\s*close/i.test(head)) told = true
      else setTimeout(send, Math.random() * thinkMillis)
    }
  })
  let error: string | undefined
  socket.on("error", (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message
  })
  const closed = new Promise<string | undefined>((resolve) => socket.once("close", () => resolve(error)))
  return { sent: () => sent, answered: () => answered, told: () => told, closed }
}

describe("graceful shutdown under keep-alive traffic", () => {
  it.scopedLive(
    "SIGTERM while 24 keep-alive clients loop: every request sent is answered, each client is told to close, no reset",
    () =>
      Effect.gen(function* () {
        const service = yield* startService()
        expect((yield* call(service.port, "GET", "/api/v1/products")).status).toBe(200)
        const clients = Array.from({ length: 24 }, () => loopClient(service.port, "/api/v1/products", 100))
        // Every client well into its loop before the signal.
        yield* Effect.promise(async () => {
          const deadline = performance.now() + 10_000
          while (clients.some((client) => client.answered() < 3) && performance.now() < deadline) await sleep(20)
        })
        expect(clients.map((client) => client.answered() >= 3)).not.toContain(false)

        service.child.kill("SIGTERM")
        const exit = yield* awaitExit(service, 10_000)
        const errors = yield* Effect.promise(() =>
          Promise.all(clients.map((client) => Promise.race([client.closed, sleep(5_000).then(() => "still open")])))
        )

        expect({ code: exit.code, signal: exit.signal }, service.output()).toEqual({ code: 0, signal: null })
        expect(errors.filter((error) => error !== undefined)).toEqual([])
        const unanswered = clients.reduce((sum, client) => sum + client.sent() - client.answered(), 0)
        expect(unanswered, "requests sent and never answered").toBe(0)
        // Closed only after telling: none was cut between two requests.
        expect(clients.filter((client) => !client.told()).length, "clients cut without Connection: close").toBe(0)
      }),
    boundWithStart(30_000)
  )
})
