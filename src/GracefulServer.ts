import { createServer } from "node:http"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import type { Socket } from "node:net"

type Listener = (request: IncomingMessage, response: ServerResponse) => void

export interface GracefulServer {
  readonly server: Server
  /** Stops accepting and resolves once every request already sent has been answered and every connection closed. */
  readonly drain: () => Promise<void>
}

export interface DrainOptions {
  /** Accepting stops only after no connection has arrived for this long: the kernel's backlog is drained first. */
  readonly quietMillis: number
  /** ...but no longer than this. */
  readonly maxAcceptMillis: number
  /** In-flight requests get this long to finish before their connections are cut. */
  readonly graceMillis: number
}

const defaults: DrainOptions = { quietMillis: 50, maxAcceptMillis: 2_000, graceMillis: 8_000 }

/**
 * A Node HTTP server that keeps the contract's shutdown promise: every request already sent gets its answer.
 *
 * Two gaps of a plain server are closed here. Closing the listening socket resets connections the kernel accepted
 * but Node had not yet taken from the backlog, so accepting goes on until the backlog is quiet. And the port
 * listens before the application's handler is attached, so requests that arrive in between are held and handed to
 * the handler when it attaches, instead of going unanswered.
 */
export const make = (options: DrainOptions = defaults): GracefulServer => {
  const server = createServer()
  let lastConnectionAt = Date.now()
  let draining = false
  let handler: Listener | undefined
  const early: Array<[IncomingMessage, ServerResponse]> = []

  const track: Listener = (request, response) => {
    if (draining && !response.headersSent) response.setHeader("connection", "close")
    if (handler === undefined) early.push([request, response])
  }
  server.on("request", track)
  server.on("newListener", (event: string, listener: Listener) => {
    if (event !== "request" || handler !== undefined || listener === track) return
    handler = listener
    // Handed over on the next turn, once the handler is attached and the server ready for them.
    setImmediate(() => early.splice(0).forEach(([request, response]) => listener(request, response)))
  })
  server.on("connection", (_socket: Socket) => {
    lastConnectionAt = Date.now()
  })

  const drain = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve()
      draining = true
      const started = Date.now()
      const waitForQuiet = setInterval(() => {
        const now = Date.now()
        if (now - lastConnectionAt < options.quietMillis && now - started < options.maxAcceptMillis) return
        clearInterval(waitForQuiet)
        // Every accepted connection has had `quietMillis` to show its request; the ones still idle can go.
        const sweep = setInterval(() => server.closeIdleConnections(), 25)
        const cut = setTimeout(() => server.closeAllConnections(), options.graceMillis)
        server.close(() => {
          clearInterval(sweep)
          clearTimeout(cut)
          resolve()
        })
        server.closeIdleConnections()
      }, 10)
    })

  return { server, drain }
}
