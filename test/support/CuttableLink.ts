import { Effect } from "effect"
import type { Scope } from "effect"
import * as Net from "node:net"

// A TCP relay in front of a local server (PostgreSQL) that a test can cut and restore, as a network partition or a
// database restart looks from the service: cut, every open connection is reset and every new one is closed as it
// arrives; restored, connections pass again. The server itself is never touched, nor anyone else's connections.

export interface CuttableLink {
  readonly port: number
  /** Resets every connection through the link and refuses new ones until `restore`. */
  readonly cut: Effect.Effect<void>
  readonly restore: Effect.Effect<void>
  /** Connections through the link now. */
  readonly open: () => number
}

/** A relay to `127.0.0.1:targetPort` on a free port, closed with its scope. */
export const make = (targetPort: number): Effect.Effect<CuttableLink, never, Scope.Scope> =>
  Effect.gen(function* () {
    const sockets = new Set<Net.Socket>()
    let down = false
    const server = yield* Effect.acquireRelease(
      Effect.async<Net.Server>((resume) => {
        const server = Net.createServer((client) => {
          if (down) return void client.resetAndDestroy()
          const upstream = Net.connect({ host: "127.0.0.1", port: targetPort })
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.once("close", () => sockets.delete(socket))
          }
          const close = () => {
            client.destroy()
            upstream.destroy()
          }
          client.pipe(upstream)
          upstream.pipe(client)
          for (const socket of [client, upstream]) {
            socket.on("close", close)
            socket.on("error", close)
          }
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    return {
      port: (server.address() as Net.AddressInfo).port,
      cut: Effect.sync(() => {
        down = true
        for (const socket of sockets) socket.resetAndDestroy()
      }),
      restore: Effect.sync(() => {
        down = false
      }),
      open: () => sockets.size / 2
    }
  })
