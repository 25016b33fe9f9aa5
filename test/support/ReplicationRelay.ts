import { Effect } from "effect"
import type { Scope } from "effect"
import * as Net from "node:net"

// A TCP relay in front of a Redis master through which its replica replicates, and that a test can tell to lose the
// replication stream: what the master sends to the replica vanishes while the connection stays open, so the replica
// silently falls behind, its REPLCONF ACKs still reach the master, and `WAIT 1 <ms>` there answers 0. Killing the
// replica or SIGSTOP would not do: the first closes the link (the master sees it), the second only delays the stream.
//
// Sentinels must monitor the master at this relay's address too (else they would re-point the replica straight at the
// master), so ordinary clients come through here as well: only a connection whose client sent REPLCONF, PSYNC or SYNC
// (the replica's handshake) loses its replies.

export interface ReplicationRelay {
  readonly port: number
  /** From now on the master's bytes to every replication connection, open or new, are dropped. */
  readonly sever: Effect.Effect<void>
  /**
   * Passes the stream again and closes the replication connections, so the replica reconnects and resumes from its
   * own offset (a partial resync from the master's backlog) instead of reading a stream with a hole in it.
   */
  readonly restore: Effect.Effect<void>
  /** Replication connections open through the relay now. */
  readonly replicationLinks: () => number
}

// A replica's handshake, as RESP bulk strings or inline commands: `*3\r\n$8\r\nREPLCONF\r\n...`, `PSYNC ? -1\r\n`.
const handshake = /(?:^|\r\n)(?:REPLCONF|PSYNC|SYNC)(?:\r\n| )/i

interface Link {
  readonly client: Net.Socket
  readonly upstream: Net.Socket
  replication: boolean
}

/** A relay to `127.0.0.1:targetPort` on a free port, closed with its scope. */
export const make = (targetPort: number): Effect.Effect<ReplicationRelay, never, Scope.Scope> =>
  Effect.gen(function* () {
    const links = new Set<Link>()
    let severed = false

    const relay = (client: Net.Socket) => {
      const upstream = Net.connect({ host: "127.0.0.1", port: targetPort })
      const link: Link = { client, upstream, replication: false }
      links.add(link)
      const close = () => {
        links.delete(link)
        client.destroy()
        upstream.destroy()
      }
      client.on("data", (chunk: Buffer) => {
        if (!link.replication && handshake.test(chunk.toString("latin1"))) link.replication = true
        upstream.write(chunk)
      })
      upstream.on("data", (chunk: Buffer) => {
        if (!(severed && link.replication)) client.write(chunk)
      })
      for (const socket of [client, upstream]) {
        socket.on("close", close)
        socket.on("error", close)
      }
    }

    const server = yield* Effect.acquireRelease(
      Effect.async<Net.Server>((resume) => {
        const server = Net.createServer(relay)
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const { client, upstream } of links) (client.destroy(), upstream.destroy())
          server.close(() => resume(Effect.void))
        })
    )

    return {
      port: (server.address() as Net.AddressInfo).port,
      sever: Effect.sync(() => {
        severed = true
      }),
      restore: Effect.sync(() => {
        severed = false
        for (const link of links) if (link.replication) (link.client.destroy(), link.upstream.destroy())
      }),
      replicationLinks: () => [...links].filter((link) => link.replication).length
    }
  })
