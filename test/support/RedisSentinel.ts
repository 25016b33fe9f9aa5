import { Cause, Clock, Duration, Effect, Exit, Schedule } from "effect"
import type { Scope } from "effect"
import * as RedisServer from "./RedisServer.js"
import * as ReplicationRelay from "./ReplicationRelay.js"

// A master, one replica and three Sentinels, all on free loopback ports and killed with the scope. The replica
// replicates through a relay that can lose the stream (ReplicationRelay.ts), and the Sentinels monitor the master at
// that same relay address: were they told its own port, they would see the replica following another address and
// re-point it straight at the master, around the relay. So a client that asks the Sentinels for the master and
// connects there goes through the relay too, as an ordinary client whose replies are never dropped.

export interface HostPort {
  readonly host: string
  readonly port: number
}

export interface RedisSentinel {
  /** The master's name at the Sentinels. */
  readonly name: string
  readonly sentinels: ReadonlyArray<HostPort>
  /** The Sentinel processes, in the order of `sentinels`. */
  readonly sentinelServers: ReadonlyArray<RedisServer.RedisServer>
  /** The master as started; after a failover it may be a replica, or stopped. */
  readonly master: RedisServer.RedisServer
  /** The address the Sentinels name for `master`: the relay in front of it. */
  readonly masterAddress: HostPort
  /** The replica as started: the one the Sentinels promote. */
  readonly replica: RedisServer.RedisServer
  readonly replicaAddress: HostPort
  /** From now on the replica receives nothing from the master, though both still see the link up. */
  readonly severReplication: Effect.Effect<void>
  /** The stream passes again; the replica reconnects and catches up from the master's backlog. */
  readonly restoreReplication: Effect.Effect<void>
  /** `SENTINEL FAILOVER <name>` on the first Sentinel: promotes the replica though the master is alive. */
  readonly failover: Effect.Effect<void>
  /** The master the first Sentinel names now. */
  readonly masterNamed: Effect.Effect<HostPort>
  /**
   * Waits until every Sentinel names a master that satisfies `predicate` (polled every 100 ms; a defect after
   * `timeout`, 20 s by default) and returns it.
   */
  readonly awaitMaster: (
    predicate: (master: HostPort) => boolean,
    timeout?: Duration.DurationInput
  ) => Effect.Effect<HostPort>
  /** One command to Sentinel `index`. */
  readonly sentinelCommand: (index: number, ...args: Array<string>) => Effect.Effect<unknown>
}

const liveClock = Clock.make()
const READY_TIMEOUT = "20 seconds"

const loopback = (port: number): HostPort => ({ host: "127.0.0.1", port })

/** `[key, value, key, value, ...]` (SENTINEL MASTER) or `key:value` lines (INFO) as a record. */
const fields = (reply: unknown): Record<string, string> => {
  const record: Record<string, string> = {}
  if (Array.isArray(reply))
    for (let i = 0; i + 1 < reply.length; i += 2) record[String(reply[i])] = String(reply[i + 1])
  else
    for (const line of String(reply).split("\r\n")) {
      const at = line.indexOf(":")
      if (at > 0) record[line.slice(0, at)] = line.slice(at + 1)
    }
  return record
}

/** Retries `check` until it yields true, on wall-clock time; a defect saying `what` after `timeout`. */
const poll = <A>(
  what: string,
  probe: Effect.Effect<A>,
  check: (value: A) => boolean,
  timeout: Duration.DurationInput
): Effect.Effect<A> => {
  let last: unknown = "(no answer yet)"
  const attempt = Effect.flatMap(Effect.exit(probe), (exit) => {
    last = Exit.isSuccess(exit) ? exit.value : Cause.pretty(exit.cause)
    return Exit.isSuccess(exit) && check(exit.value) ? Effect.succeed(exit.value) : Effect.fail("not yet")
  })
  return attempt.pipe(
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout(timeout),
    Effect.catchAll(() =>
      Effect.dieMessage(`${what} not within ${Duration.format(timeout)}; last: ${JSON.stringify(last, null, 1)}`)
    ),
    Effect.withClock(liveClock)
  )
}

const sentinelConfig = (name: string, master: HostPort) =>
  [
    `sentinel monitor ${name} ${master.host} ${master.port} 2`,
    `sentinel down-after-milliseconds ${name} 1000`,
    // Also how long before the same master may be failed over again (twice this): tests stay short.
    `sentinel failover-timeout ${name} 3000`,
    `sentinel parallel-syncs ${name} 1`,
    ""
  ].join("\n")

// A full resync otherwise waits 5 s for more replicas to share one snapshot; on either, as either may end up master.
const replicationArgs = ["--repl-diskless-sync-delay", "0", "--replica-announce-ip", "127.0.0.1"]

export const make = (options?: { name?: string }): Effect.Effect<RedisSentinel, never, Scope.Scope> =>
  Effect.gen(function* () {
    const name = options?.name ?? "mymaster"
    const master = yield* RedisServer.make({ args: replicationArgs })
    const relay = yield* ReplicationRelay.make(master.port)
    const masterAddress = loopback(relay.port)
    const replica = yield* RedisServer.make({
      args: [...replicationArgs, "--replicaof", masterAddress.host, String(masterAddress.port)]
    })
    const sentinelServers = yield* Effect.all(
      Array.from({ length: 3 }, () => RedisServer.make({ sentinelConfig: sentinelConfig(name, masterAddress) }))
    )
    const sentinels = sentinelServers.map((server) => loopback(server.port))

    yield* poll(
      "replica in sync",
      Effect.map(replica.command("INFO", "replication"), fields),
      (info) => info.master_link_status === "up",
      READY_TIMEOUT
    )
    // A failover needs a majority of Sentinels that know each other (hello messages every 2 s) and the replica.
    yield* Effect.forEach(sentinelServers, (sentinel) =>
      poll(
        `Sentinel :${sentinel.port} seeing the master, its replica and two other Sentinels`,
        Effect.map(sentinel.command("SENTINEL", "MASTER", name), fields),
        (state) => state.flags === "master" && state["num-slaves"] === "1" && state["num-other-sentinels"] === "2",
        READY_TIMEOUT
      )
    )

    const masterOf = (sentinel: RedisServer.RedisServer) =>
      Effect.map(sentinel.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", name), (reply) => {
        const [host, port] = reply as [string, string]
        return { host, port: Number(port) }
      })

    return {
      name,
      sentinels,
      sentinelServers,
      master,
      masterAddress,
      replica,
      replicaAddress: loopback(replica.port),
      severReplication: relay.sever,
      restoreReplication: relay.restore,
      failover: Effect.asVoid(sentinelServers[0]!.command("SENTINEL", "FAILOVER", name)),
      masterNamed: masterOf(sentinelServers[0]!),
      awaitMaster: (predicate, timeout = READY_TIMEOUT) =>
        poll(
          "every Sentinel naming the expected master",
          Effect.forEach(sentinelServers, masterOf),
          (named) => named.every(predicate),
          timeout
        ).pipe(Effect.map((named) => named[0]!)),
      sentinelCommand: (index, ...args) => {
        const sentinel = sentinelServers[index]
        return sentinel === undefined ? Effect.dieMessage(`no Sentinel ${index}`) : sentinel.command(...args)
      }
    } satisfies RedisSentinel
  })
