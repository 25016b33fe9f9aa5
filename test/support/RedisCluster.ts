import { execFile } from "node:child_process"
import { Cause, Clock, Duration, Effect, Exit, Schedule } from "effect"
import type { Scope } from "effect"
import * as RedisServer from "./RedisServer.js"

// A Redis Cluster of three masters without replicas, on free loopback ports, killed with the scope. Each node keeps
// its nodes.conf in its own dir, so `start(i)` brings back the same node (same id, same slots), empty: no snapshot
// is kept, as a restart of a cache node without persistence.

export interface HostPort {
  readonly host: string
  readonly port: number
}

export interface RedisCluster {
  readonly nodes: ReadonlyArray<HostPort>
  /** The node processes, in the order of `nodes`. */
  readonly servers: ReadonlyArray<RedisServer.RedisServer>
  /** SIGKILL node `index`; its slots are served by nobody until `start(index)`. */
  readonly kill: (index: number) => Effect.Effect<void>
  /** Starts node `index` again on its port and dir, and waits until every node sees the cluster whole and ok. */
  readonly start: (index: number) => Effect.Effect<void>
  /** Waits until every other running node flags node `index` as failed (about twice the node timeout). */
  readonly awaitFailed: (index: number) => Effect.Effect<void>
  /** The index of the node whose slots include `key`'s (`CLUSTER KEYSLOT`, then `CLUSTER SLOTS`). */
  readonly masterOf: (key: string) => Effect.Effect<number>
  /** One command on a fresh plain connection to node `index` (a MOVED reply is an error, hence a defect). */
  readonly command: (index: number, ...args: Array<string>) => Effect.Effect<unknown>
}

export interface Options {
  /**
   * `cluster-require-full-coverage` (default false). Redis's own default, true, makes every node refuse every key
   * (CLUSTERDOWN) as soon as one master is lost; the contract asks that the other masters keep caching while only
   * the lost master's keys are answered from the database, so the harness runs the way production should.
   */
  readonly requireFullCoverage?: boolean
}

const liveClock = Clock.make()
const SIZE = 3
const NODE_TIMEOUT_MS = 1000
const READY_TIMEOUT = Duration.seconds(20)

const loopback = (port: number): HostPort => ({ host: "127.0.0.1", port })

const infoField = (info: unknown, field: string) => new RegExp(`^${field}:(.*?)\\r?$`, "m").exec(String(info))?.[1]

/** Retries `probe` on wall-clock time until it holds; a defect naming `what` and the last answer after the bound. */
const until = (what: string, probe: Effect.Effect<boolean>, describe: Effect.Effect<unknown>): Effect.Effect<void> =>
  Effect.catchAllCause(probe, () => Effect.succeed(false)).pipe(
    Effect.filterOrFail(
      (done) => done,
      () => "not yet"
    ),
    Effect.retry(Schedule.spaced("100 millis")),
    Effect.timeout(READY_TIMEOUT),
    Effect.catchAll(() =>
      Effect.flatMap(Effect.exit(describe), (last) =>
        Effect.dieMessage(
          `${what} not within ${Duration.format(READY_TIMEOUT)}; last: ${
            Exit.isSuccess(last) ? JSON.stringify(last.value) : Cause.pretty(last.cause)
          }`
        )
      )
    ),
    Effect.withClock(liveClock)
  )

const redisCli = (args: ReadonlyArray<string>) =>
  Effect.async<string>((resume) => {
    execFile("redis-cli", [...args], { timeout: 20_000 }, (error, stdout, stderr) =>
      resume(
        error === null
          ? Effect.succeed(stdout)
          : Effect.dieMessage(`redis-cli ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`)
      )
    )
  })

export const make = (options: Options = {}): Effect.Effect<RedisCluster, never, Scope.Scope> =>
  Effect.gen(function* () {
    // prettier-ignore
    const args = [
      "--cluster-enabled", "yes",
      "--cluster-config-file", "nodes.conf",
      "--cluster-node-timeout", String(NODE_TIMEOUT_MS),
      "--cluster-require-full-coverage", options.requireFullCoverage === true ? "yes" : "no"
    ]
    const servers = yield* Effect.all(Array.from({ length: SIZE }, () => RedisServer.make({ args })))
    const nodes = servers.map((server) => loopback(server.port))
    const running = servers.map(() => true)

    const server = (index: number) =>
      servers[index] === undefined ? Effect.dieMessage(`no cluster node ${index}`) : Effect.succeed(servers[index])
    const command = (index: number, ...args: Array<string>) =>
      Effect.flatMap(server(index), (server) => server.command(...args))
    const live = () => servers.flatMap((_, index) => (running[index] ? [index] : []))
    const clusterNodes = (index: number) =>
      Effect.map(command(index, "CLUSTER", "NODES"), (text) => String(text).trimEnd().split("\n"))

    const infos = Effect.suspend(() => Effect.forEach(live(), (index) => command(index, "CLUSTER", "INFO")))
    const whole = until(
      "every node seeing three masters, all slots assigned, cluster_state:ok",
      infos.pipe(
        Effect.map((infos) =>
          infos.every(
            (info) =>
              infoField(info, "cluster_state") === "ok" &&
              infoField(info, "cluster_slots_assigned") === "16384" &&
              infoField(info, "cluster_slots_fail") === "0" &&
              infoField(info, "cluster_known_nodes") === String(SIZE)
          )
        )
      ),
      infos
    )

    yield* redisCli([
      "--cluster",
      "create",
      ...nodes.map(({ host, port }) => `${host}:${port}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes"
    ])
    yield* whole

    // From any running node: each one knows the whole map, also the slots of a node that is down.
    const slotOwners = Effect.suspend(() =>
      Effect.firstSuccessOf(
        live().map((index) =>
          Effect.map(
            Effect.sandbox(command(index, "CLUSTER", "SLOTS")),
            (slots) => slots as Array<[number, number, [string, number]]>
          )
        )
      )
    ).pipe(Effect.orDie)
    /** Whether node `index` carries the `fail` flag in a `CLUSTER NODES` line. */
    const flaggedFailed = (index: number) => (line: string) => {
      const [, address = "", flags = ""] = line.split(" ")
      return address.startsWith(`127.0.0.1:${nodes[index]!.port}@`) && flags.split(",").includes("fail")
    }

    return {
      nodes,
      servers,
      kill: (index) =>
        Effect.flatMap(server(index), (server) =>
          Effect.tap(server.stop, () => {
            running[index] = false
          })
        ),
      start: (index) =>
        Effect.flatMap(server(index), (server) =>
          server.start.pipe(
            Effect.tap(() => {
              running[index] = true
            }),
            Effect.zipRight(whole)
          )
        ),
      awaitFailed: (index) =>
        until(
          `node ${index} flagged as failed`,
          Effect.suspend(() =>
            Effect.forEach(
              live().filter((other) => other !== index),
              (other) => Effect.map(clusterNodes(other), (lines) => lines.some(flaggedFailed(index)))
            )
          ).pipe(Effect.map((flags) => flags.every(Boolean))),
          Effect.suspend(() => Effect.forEach(live(), clusterNodes))
        ),
      masterOf: (key) =>
        Effect.gen(function* () {
          const owners = yield* slotOwners
          const first = live()[0]
          if (first === undefined) return yield* Effect.dieMessage("no cluster node is running")
          const slot = Number(yield* command(first, "CLUSTER", "KEYSLOT", key))
          const range = owners.find(([start, end]) => start <= slot && slot <= end)
          const owner = range === undefined ? -1 : nodes.findIndex(({ port }) => port === Number(range[2][1]))
          return owner >= 0 ? owner : yield* Effect.dieMessage(`no node serves slot ${slot} (${key})`)
        }),
      command
    } satisfies RedisCluster
  })
