import { Effect } from "effect"
import type { Scope } from "effect"
import * as Net from "node:net"

// A TCP relay in front of a local server (PostgreSQL) that a test can cut, hang, hold and restore, as a database
// restart, a network partition or a database still starting looks from the service. Cut: every open connection is
// reset and every new one is closed as it arrives (the server is down). Hung: nothing passes either way and nothing
// is closed (packets vanish; only the client's own timeouts end its wait); restored, those connections are reset, as
// a partition that heals finds them long given up. Held: new connections wait, and restored they all pass at once.
// The server itself is never touched, nor anyone else's connections.

export interface CuttableLink {
  readonly port: number
  /** Resets every connection through the link and refuses new ones until `restore`. */
  readonly cut: Effect.Effect<void>
  /** Holds everything sent either way, on open connections and on new ones, until `restore`. */
  readonly hang: Effect.Effect<void>
  /**
   * Accepts new connections without passing them on until `restore`, which then passes them all at the same moment:
   * clients that started at different times reach the server together.
   */
  readonly hold: Effect.Effect<void>
  /** Connections accepted while held, waiting to pass. */
  readonly waiting: () => number
  readonly restore: Effect.Effect<void>
}

/** A relay to `127.0.0.1:targetPort` on a free port, closed with its scope. */
export const make = (targetPort: number): Effect.Effect<CuttableLink, never, Scope.Scope> =>
  Effect.gen(function* () {
    const relayed = new Set<{ readonly client: Net.Socket; readonly upstream: Net.Socket }>()
    const stalled = new Set<Net.Socket>()
    const waiting = new Set<Net.Socket>()
    let mode: "open" | "cut" | "hung" | "held" = "open"

    const relay = (client: Net.Socket) => {
      const upstream = Net.connect({ host: "127.0.0.1", port: targetPort })
      const pair = { client, upstream }
      relayed.add(pair)
      const close = () => {
        relayed.delete(pair)
        client.destroy()
        upstream.destroy()
      }
      client.pipe(upstream)
      upstream.pipe(client)
      for (const socket of [client, upstream]) {
        socket.on("close", close)
        socket.on("error", close)
      }
    }

    const park = (into: Set<Net.Socket>, client: Net.Socket) => {
      into.add(client)
      client.pause()
      client.on("error", () => {})
      client.once("close", () => into.delete(client))
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<Net.Server>((resume) => {
        const server = Net.createServer((client) => {
          if (mode === "cut") client.resetAndDestroy()
          else if (mode === "hung") park(stalled, client)
          else if (mode === "held") park(waiting, client)
          else relay(client)
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const { client, upstream } of relayed) (client.destroy(), upstream.destroy())
          for (const socket of [...stalled, ...waiting]) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )

    return {
      port: (server.address() as Net.AddressInfo).port,
      cut: Effect.sync(() => {
        mode = "cut"
        for (const { client, upstream } of relayed) (client.resetAndDestroy(), upstream.destroy())
        for (const socket of [...stalled, ...waiting]) socket.resetAndDestroy()
      }),
      hang: Effect.sync(() => {
        mode = "hung"
        for (const { client, upstream } of relayed) {
          client.unpipe(upstream)
          upstream.unpipe(client)
          client.pause()
          upstream.pause()
          stalled.add(client)
        }
      }),
      hold: Effect.sync(() => {
        mode = "held"
      }),
      waiting: () => waiting.size,
      restore: Effect.sync(() => {
        const was = mode
        mode = "open"
        if (was === "hung") {
          for (const { client, upstream } of relayed) (client.resetAndDestroy(), upstream.destroy())
          for (const socket of stalled) socket.resetAndDestroy()
        }
        for (const client of [...waiting]) {
          waiting.delete(client)
          client.removeAllListeners("close")
          client.resume()
          relay(client)
        }
      })
    }
  })
