import { Context } from "effect"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import type { Socket } from "node:net"

type Listener = (request: IncomingMessage, response: ServerResponse) => void

export interface GracefulServer {
  readonly server: Server
  /** Stops accepting and resolves once every request already sent has been answered and every connection closed. */
  readonly drain: () => Promise<void>
  /**
   * Calls `listener` once when the drain begins; returns a function that forgets it. For answers that never end by
   * themselves (an event stream), which the drain would otherwise wait on until its grace runs out.
   */
  readonly onDrain: (listener: () => void) => () => void
}

/** The `onDrain` of the server the app is served on. */
export class Draining extends Context.Tag("Draining")<Draining, GracefulServer["onDrain"]>() {}

export interface DrainOptions {
  /** Accepting stops only after no connection has arrived for this long: the kernel's backlog is drained first. */
  readonly quietMillis: number
  /** ...but no longer than this. */
  readonly maxAcceptMillis: number
  /** A connection between requests is closed once nothing has moved on it for this long since the drain began. */
  readonly idleMillis: number
  /** In-flight requests get this long to finish before their connections are cut. */
  readonly graceMillis: number
}

const defaults: DrainOptions = { quietMillis: 50, maxAcceptMillis: 2_000, idleMillis: 500, graceMillis: 8_000 }

// Node's own test for a request being answered on a socket (`closeIdleConnections` makes it too): the response
// in progress, attached until it has finished.
const answering = (socket: Socket) => (socket as Socket & { _httpMessage?: unknown })._httpMessage != null

interface Seen {
  readonly read: number
  readonly written: number
  readonly at: number
}

/**
 * Wraps a Node HTTP server so that it keeps the contract's shutdown promise: every request already sent gets its
 * answer.
 *
 * Three gaps of a plain server are closed here. Closing the listening socket resets connections the kernel accepted
 * but Node had not yet taken from the backlog, so accepting goes on until the backlog is quiet. The port listens
 * before the application's handler is attached, so requests that arrive in between are held and handed to the
 * handler when it attaches, instead of going unanswered. And a keep-alive connection between two requests looks
 * idle, but its client may be sending the next one right now: closing it then resets that request. So once draining,
 * every answer says `Connection: close` (the client then goes by itself, after its answer), and a connection with no
 * answer in progress is closed only after nothing has moved on it for `idleMillis`, watched from the drain's start —
 * long past the gap of a client in a request loop. `server.close()` closes every idle connection at once (Node 19+),
 * so it is called only once no connection is in such a gap (or after `maxAcceptMillis`).
 */
export const make = (server: Server, options: DrainOptions = defaults): GracefulServer => {
  let lastConnectionAt = Date.now()
  let draining = false
  let handler: Listener | undefined
  const early: Array<[IncomingMessage, ServerResponse]> = []
  const sockets = new Set<Socket>()
  const drainListeners = new Set<() => void>()
  const onDrain = (listener: () => void) => {
    if (draining) {
      listener()
      return () => {}
    }
    drainListeners.add(listener)
    return () => void drainListeners.delete(listener)
  }

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
  server.on("connection", (socket: Socket) => {
    lastConnectionAt = Date.now()
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })

  const drain = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve()
      draining = true
      for (const listener of drainListeners) listener()
      drainListeners.clear()
      const started = Date.now()
      const seen = new Map<Socket, Seen>()

      /** Closes the connections quiet for `idleMillis`; tells whether any other is between requests. */
      const sweep = (now: number) => {
        let between = false
        for (const socket of sockets) {
          if (answering(socket)) {
            seen.delete(socket)
            continue
          }
          const last = seen.get(socket)
          if (last === undefined || last.read !== socket.bytesRead || last.written !== socket.bytesWritten) {
            seen.set(socket, { read: socket.bytesRead, written: socket.bytesWritten, at: now })
            between = true
          } else if (now - last.at >= options.idleMillis) {
            socket.destroy()
          } else {
            between = true
          }
        }
        return between
      }

      let cut: NodeJS.Timeout | undefined
      const tick = setInterval(() => {
        const now = Date.now()
        const between = sweep(now)
        if (!server.listening) return
        const quiet = now - lastConnectionAt >= options.quietMillis && !between
        if (!quiet && now - started < options.maxAcceptMillis) return
        cut = setTimeout(() => server.closeAllConnections(), options.graceMillis)
        server.close(() => {
          clearInterval(tick)
          clearTimeout(cut)
          resolve()
        })
      }, 10)
    })

  return { server, drain, onDrain }
}
