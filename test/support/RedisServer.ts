import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { Clock, Context, Effect, Layer, Schedule } from "effect"
import type { Scope } from "effect"
import { Redis } from "ioredis"
import { freePort } from "./ServiceProcess.js"

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** SIGKILL and wait for exit: the port refuses connections afterwards. */
  readonly stop: Effect.Effect<void>
  /** Start again on the same port and dir (an append-only file is reloaded), resolved once it answers PING. */
  readonly start: Effect.Effect<void>
  /** `CLIENT PAUSE <ms> ALL` from a separate short-lived connection. */
  readonly pause: (ms: number) => Effect.Effect<void>
  /** SIGSTOP: connections are still accepted by the kernel but nothing is ever answered, like a hung Redis. */
  readonly freeze: Effect.Effect<void>
  /** SIGCONT. */
  readonly thaw: Effect.Effect<void>
  /** One command on a fresh connection; any failure (refused, error reply) is a defect. */
  readonly command: (...args: Array<string>) => Effect.Effect<unknown>
  /**
   * Several commands in order on one fresh connection, each sent after the previous reply: what depends on the
   * connection (`WAIT` after a write, `MULTI`) sees the ones before it. An error reply is a defect.
   */
  readonly commands: (...commands: Array<ReadonlyArray<string>>) => Effect.Effect<Array<unknown>>
}

export interface Options {
  /** An append-only file, fsynced on every write, so a restart reloads every acknowledged write. */
  readonly appendOnly?: boolean
  /** More `--option value` arguments after the harness's own (replication, cluster mode): they win. */
  readonly args?: ReadonlyArray<string>
  /**
   * Runs a Sentinel (`redis-server <dir>/sentinel.conf --sentinel`) with this configuration, written once: a
   * Sentinel rewrites its file with what it learns, and a restart reads that back.
   */
  readonly sentinelConfig?: string
}

// Found through PATH, as `.ci/run` checks for it and installs it.
const REDIS_SERVER = "redis-server"
const READY_TIMEOUT = "5 seconds"

// Readiness polling and quit fallbacks must run on wall-clock time even under `it.effect` / `it.scoped`,
// whose TestClock would otherwise never advance them.
const liveClock = Clock.make()

interface Running {
  readonly child: ChildProcess
  readonly exited: Promise<void>
  spawnError?: NodeJS.ErrnoException
  /** stdout/stderr tail: errors that stop startup (bad config, port in use) are printed there, not to the log file. */
  output: string
}

const connect = (port: number) =>
  Effect.sync(() => {
    const client = new Redis({
      host: "127.0.0.1",
      port,
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null
    })
    // Failures surface through the rejected promises; without a listener ioredis also prints them to stderr.
    client.on("error", () => {})
    return client
  })

// QUIT waits for a reply a frozen or paused server never sends, so it is bounded and backed by a hard disconnect.
// Releases run uninterruptibly; without `interruptible` the timeout would still wait for the QUIT reply.
const release = (client: Redis, graceful: boolean) =>
  (graceful && client.status === "ready"
    ? Effect.tryPromise(() => client.quit()).pipe(Effect.interruptible, Effect.timeout("100 millis"), Effect.ignore)
    : Effect.void
  ).pipe(Effect.ensuring(Effect.sync(() => client.disconnect())), Effect.withClock(liveClock))

const runAll = (port: number, commands: ReadonlyArray<ReadonlyArray<string>>, graceful = true) =>
  Effect.acquireUseRelease(
    connect(port),
    (client) =>
      Effect.tryPromise({
        try: async () => {
          await client.connect()
          const replies: Array<unknown> = []
          for (const args of commands) replies.push(await client.call(args[0] ?? "PING", args.slice(1)))
          return replies
        },
        catch: (cause) =>
          new Error(`redis-server :${port} ${commands.map((args) => args.join(" ")).join("; ")}: ${String(cause)}`, {
            cause
          })
      }),
    (client) => release(client, graceful)
  )

const run = (port: number, args: ReadonlyArray<string>, graceful = true) =>
  Effect.map(runAll(port, [args], graceful), (replies) => replies[0])

const logTail = (dir: string) =>
  Effect.promise(() =>
    Fs.readFile(Path.join(dir, "redis.log"), "utf8").then(
      (log) => log.trimEnd().split("\n").slice(-20).join("\n"),
      () => "(no redis.log)"
    )
  )

const sentinelFile = (dir: string) => Path.join(dir, "sentinel.conf")

const spawnServer = (port: number, dir: string, options: Options): Running => {
  const appendOnly = options.appendOnly ?? false
  // A Sentinel keeps no data: the persistence options are left to its defaults.
  // prettier-ignore
  const args = [
    ...(options.sentinelConfig === undefined ? [] : [sentinelFile(dir), "--sentinel"]),
    "--port", String(port),
    "--bind", "127.0.0.1",
    "--dir", dir,
    ...(options.sentinelConfig === undefined ? ["--save", "", "--appendonly", appendOnly ? "yes" : "no"] : []),
    ...(appendOnly ? ["--appendfsync", "always"] : []),
    "--daemonize", "no",
    "--logfile", Path.join(dir, "redis.log"),
    "--protected-mode", "no",
    ...(options.args ?? [])
  ]
  const child = spawn(REDIS_SERVER, args, { stdio: ["ignore", "pipe", "pipe"] })
  // Scope finalizers do not run when a worker exits with scopes still open (process.exit, a torn-down pool);
  // this keeps the server from outliving it then. Only a hard crash of node itself can still leak one.
  const killOnExit = () => child.kill("SIGKILL")
  process.once("exit", killOnExit)
  const running: Running = {
    child,
    output: "",
    exited: new Promise<void>((resolve) => {
      child.once("exit", () => resolve())
      child.once("error", (error) => {
        running.spawnError = error
        resolve()
      })
    }).then(() => {
      process.off("exit", killOnExit)
    })
  }
  const capture = (chunk: Buffer) => {
    running.output = (running.output + chunk.toString("utf8")).slice(-4000)
  }
  child.stdout?.on("data", capture)
  child.stderr?.on("data", capture)
  return running
}

const hasExited = (running: Running) =>
  running.spawnError !== undefined || running.child.exitCode !== null || running.child.signalCode !== null

export const make = (options: Options = {}): Effect.Effect<RedisServer, never, Scope.Scope> =>
  Effect.gen(function* () {
    const port = yield* freePort
    const lock = yield* Effect.makeSemaphore(1)
    let running: Running | undefined

    const stopUnlocked = Effect.suspend(() => {
      const current = running
      if (current === undefined) return Effect.void
      running = undefined
      // SIGKILL also ends a SIGSTOPped process, so a frozen server needs no SIGCONT first.
      current.child.kill("SIGKILL")
      return Effect.promise(() => current.exited)
    }).pipe(Effect.uninterruptible)

    const dir = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const dir = await Fs.mkdtemp(Path.join(Os.tmpdir(), "redis-test-"))
        if (options.sentinelConfig !== undefined) await Fs.writeFile(sentinelFile(dir), options.sentinelConfig)
        return dir
      }),
      (dir) =>
        lock
          .withPermits(1)(stopUnlocked)
          .pipe(Effect.zipRight(Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))))
    )

    const awaitReady = (current: Running) =>
      run(port, ["PING"]).pipe(
        Effect.retry({ schedule: Schedule.spaced("20 millis"), while: () => !hasExited(current) }),
        Effect.timeoutFail({
          duration: READY_TIMEOUT,
          onTimeout: () => new Error(`no PING reply within ${READY_TIMEOUT}`)
        }),
        Effect.withClock(liveClock)
      )

    const start = lock.withPermits(1)(
      Effect.suspend(() => {
        if (running !== undefined) return Effect.void
        const current = spawnServer(port, dir, options)
        running = current
        return awaitReady(current).pipe(
          Effect.asVoid,
          Effect.catchAll((error) =>
            Effect.gen(function* () {
              yield* stopUnlocked
              const reason = current.spawnError
                ? current.spawnError.code === "ENOENT"
                  ? "redis-server is not on PATH (Debian: apt-get install -y redis-server)"
                  : `spawn failed: ${current.spawnError.message}`
                : hasExited(current)
                  ? `exited (code ${current.child.exitCode}, signal ${current.child.signalCode})`
                  : error.message
              const log = yield* logTail(dir)
              return yield* Effect.dieMessage(
                `redis-server on port ${port} did not become ready: ${reason}\n${current.output.trimEnd()}\n${log}`
              )
            })
          )
        )
      })
    )

    const signal = (name: "SIGSTOP" | "SIGCONT") =>
      Effect.suspend(() => {
        if (running === undefined)
          return Effect.dieMessage(`redis-server on port ${port} is stopped; cannot send ${name}`)
        running.child.kill(name)
        return Effect.void
      })

    const command = (...args: Array<string>) => Effect.orDie(run(port, args))

    yield* start

    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      dir,
      stop: lock.withPermits(1)(stopUnlocked),
      start,
      // No QUIT: Redis holds it back until the pause ends, which would keep the caller waiting through its own window.
      pause: (ms) => Effect.asVoid(Effect.orDie(run(port, ["CLIENT", "PAUSE", String(ms), "ALL"], false))),
      freeze: signal("SIGSTOP"),
      thaw: signal("SIGCONT"),
      command,
      commands: (...commands) => Effect.orDie(runAll(port, commands))
    } satisfies RedisServer
  })

export class TestRedis extends Context.Tag("test/TestRedis")<TestRedis, RedisServer>() {
  static readonly layer = Layer.scoped(TestRedis, make())
  static readonly layerAppendOnly = Layer.scoped(TestRedis, make({ appendOnly: true }))
}
