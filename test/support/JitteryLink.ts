import * as Net from "node:net"
import { Effect } from "effect"
import type { Scope } from "effect"

// A TCP relay in front of a local server that holds what a client sends for a random 0..maxDelay ms, in order, as a
// slow network between machines does (replies pass at once). Two processes on one machine otherwise reach Redis
// almost at the same instant, which leaves the races of a shared cache too little room to show.

export interface JitteryLink {
  readonly port: number
}

/** Forwards what `from` sends to `to`, each chunk held for a random 0..maxDelay ms, never overtaking another. */
const delayed = (from: Net.Socket, to: Net.Socket, maxDelayMillis: number) => {
  const queue: Array<{ readonly at: number; readonly chunk: Buffer }> = []
  let timer: NodeJS.Timeout | undefined
  let last = 0
  const pump = () => {
    timer = undefined
    while (queue.length > 0 && queue[0]!.at <= Date.now()) to.write(queue.shift()!.chunk)
    if (queue.length > 0) timer = setTimeout(pump, queue[0]!.at - Date.now())
  }
  from.on("data", (chunk: Buffer) => {
    last = Math.max(last, Date.now() + Math.random() * maxDelayMillis)
    queue.push({ at: last, chunk })
    if (timer === undefined) timer = setTimeout(pump, last - Date.now())
  })
  return () => timer !== undefined && clearTimeout(timer)
}

const relay = (client: Net.Socket, upstream: Net.Socket, maxDelayMillis: number) => {
  const stop = delayed(client, upstream, maxDelayMillis)
  upstream.pipe(client)
  const close = () => {
    stop()
    client.destroy()
    upstream.destroy()
  }
  for (const socket of [client, upstream]) {
    socket.on("close", close)
    socket.on("error", close)
  }
}

/** A relay to `127.0.0.1:targetPort` on a free port, closed with its scope (with every connection through it). */
export const make = (targetPort: number, maxDelayMillis: number): Effect.Effect<JitteryLink, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<{ readonly server: Net.Server; readonly sockets: Set<Net.Socket> }>((resume) => {
        const sockets = new Set<Net.Socket>()
        const server = Net.createServer((client) => {
          const upstream = Net.connect({ host: "127.0.0.1", port: targetPort })
          for (const socket of [client, upstream]) {
            sockets.add(socket)
            socket.once("close", () => sockets.delete(socket))
          }
          relay(client, upstream, maxDelayMillis)
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed({ server, sockets })))
      }),
      ({ server, sockets }) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    ),
    ({ server }) => ({ port: (server.address() as Net.AddressInfo).port })
  )
