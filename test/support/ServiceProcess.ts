import { spawn } from "node:child_process"
import type { ChildProcess } from "node:child_process"
import * as Http from "node:http"
import * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import type { Scope } from "effect"
import { tempDir } from "./Databases.js"

// The real service as a child process (`node --import tsx src/main.ts`), killed with its scope whatever happens.

const root = fileURLToPath(new URL("../..", import.meta.url))
/**
 * How long a start may take: a safety net for a start that hangs, not a measure. tsx loading Effect takes seconds of
 * CPU, and on two cores that other test runs keep busy a start took more than 40 s.
 */
export const startBoundMillis = 120_000

/** A timeout for a test that starts the service (its starts at once): the start's bound, then `millis` for the rest. */
export const boundWithStart = (millis: number) => startBoundMillis + millis

export interface Exited {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** `performance.now()` when the exit was seen. */
  readonly at: number
}

export interface ServiceProcess {
  readonly port: number
  readonly url: string
  /** A temp folder removed with the scope. */
  readonly dir: string
  readonly dbPath: string
  readonly child: ChildProcess
  /** stdout and stderr so far, interleaved. */
  readonly output: () => string
  /** `performance.now()` when `text` first showed in the output, if it has. */
  readonly seenAt: (text: string) => number | undefined
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<Exited>
  readonly hasExited: () => boolean
}

/** A port that was free a moment ago: listen on 0, read it, close. */
export const freePort = Effect.async<number>((resume) => {
  const server = Net.createServer()
  server.once("error", (error) => resume(Effect.die(error)))
  server.listen(0, "127.0.0.1", () => {
    const { port } = server.address() as Net.AddressInfo
    server.close(() => resume(Effect.succeed(port)))
  })
})

export interface SpawnOptions {
  /** Variables on top of a minimal environment; `undefined` leaves a default out. */
  readonly env?: Record<string, string | undefined>
  /** The SQLite file, from the temp folder; `<dir>/products.db` by default. */
  readonly dbPath?: (dir: string) => string
}

/**
 * Spawns the service without waiting for it. `HTTP_PORT` is a free port and `DB_PATH` lives in a temp folder unless
 * the caller overrides them; with neither `REDIS_URL` nor `REDIS_ADDR` given, `REDIS_ADDR` is a closed port, so the
 * machine's own Redis is never used.
 */
export const spawnService = (options: SpawnOptions = {}): Effect.Effect<ServiceProcess, never, Scope.Scope> =>
  Effect.gen(function* () {
    const dir = yield* tempDir("service-process-")
    const port = yield* freePort
    const closedPort = yield* freePort
    const dbPath = options.dbPath ? options.dbPath(dir) : Path.join(dir, "products.db")
    const env: Record<string, string> = {}
    const defaults = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TMPDIR: process.env.TMPDIR,
      HTTP_PORT: String(port),
      DB_PATH: dbPath,
      REDIS_ADDR: `127.0.0.1:${closedPort}`
    }
    for (const [name, value] of Object.entries({ ...defaults, ...options.env })) {
      if (value !== undefined) env[name] = value
    }
    return yield* Effect.acquireRelease(
      Effect.sync(() => launch(env, { port, dir, dbPath })),
      (service) =>
        Effect.promise(async () => {
          if (!service.hasExited()) service.child.kill("SIGKILL")
          await service.exited
        })
    )
  })

const launch = (env: Record<string, string>, at: { port: number; dir: string; dbPath: string }): ServiceProcess => {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: root,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  // Scope finalizers do not run when the worker itself is torn down; this keeps the child from outliving it then.
  const killOnExit = () => child.kill("SIGKILL")
  process.once("exit", killOnExit)
  let output = ""
  const arrivals: Array<{ readonly at: number; readonly length: number }> = []
  const capture = (chunk: Buffer) => {
    output += chunk.toString("utf8")
    arrivals.push({ at: performance.now(), length: output.length })
  }
  child.stdout?.on("data", capture)
  child.stderr?.on("data", capture)
  let done = false
  const exited = new Promise<Exited>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true
      process.off("exit", killOnExit)
      resolve({ code, signal, at: performance.now() })
    })
    child.once("error", (error) => {
      done = true
      process.off("exit", killOnExit)
      output += `\nspawn failed: ${error.message}`
      resolve({ code: null, signal: null, at: performance.now() })
    })
  })
  return {
    port: at.port,
    url: `http://127.0.0.1:${at.port}`,
    dir: at.dir,
    dbPath: at.dbPath,
    child,
    output: () => output,
    seenAt: (text) => {
      const index = output.indexOf(text)
      return index < 0 ? undefined : arrivals.find((arrival) => arrival.length >= index + text.length)?.at
    },
    exited,
    hasExited: () => done
  }
}

/** Polls GET /health until it answers 200; dies with the service's output if it exits or takes too long. */
export const awaitReady = (service: ServiceProcess, timeoutMs = startBoundMillis) =>
  Effect.promise(async () => {
    const deadline = performance.now() + timeoutMs
    while (performance.now() < deadline && !service.hasExited()) {
      // A short timeout per poll: a request sent while the service is still starting may never be answered.
      const reply = await request(service.port, "GET", "/health", { timeoutMs: 2000 }).catch(() => undefined)
      if (reply?.status === 200) return
      await sleep(100)
    }
    throw new Error(
      service.hasExited()
        ? `service exited before it was ready\n${service.output()}`
        : `service not ready within ${timeoutMs} ms\n${service.output()}`
    )
  }).pipe(Effect.orDie)

/** Spawns the service and waits until /health answers. */
export const startService = (options: SpawnOptions = {}) =>
  Effect.tap(spawnService(options), (service) => awaitReady(service))

/** The exit, or a defect naming the output when it does not come within `timeoutMs`. */
export const awaitExit = (service: ServiceProcess, timeoutMs: number) =>
  Effect.promise(() =>
    Promise.race([
      service.exited,
      sleep(timeoutMs).then(() => {
        throw new Error(`service still running ${timeoutMs} ms later\n${service.output()}`)
      })
    ])
  ).pipe(Effect.orDie)

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface Reply {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly text: string
  readonly body: any
  /** Wall-clock time from sending to the end of the body. */
  readonly millis: number
}

/** One request with node:http; a fresh connection unless an agent is given. */
export const request = (
  port: number,
  method: string,
  path: string,
  options: { readonly json?: unknown; readonly agent?: Http.Agent; readonly timeoutMs?: number } = {}
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const started = performance.now()
    const body = options.json === undefined ? undefined : JSON.stringify(options.json)
    const req = Http.request(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent: options.agent ?? false,
        headers:
          body === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
      },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("error", reject)
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let parsed: unknown = undefined
          try {
            parsed = JSON.parse(text)
          } catch {
            // not JSON: the test asserts on `text`
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            body: parsed,
            millis: performance.now() - started
          })
        })
      }
    )
    const timeoutMs = options.timeoutMs ?? 10_000
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)))
    req.on("error", reject)
    req.end(body)
  })

/** `request` as an Effect; a failed request is a defect. */
export const call = (...args: Parameters<typeof request>) => Effect.promise(() => request(...args))

export interface RawConnection {
  readonly socket: Net.Socket
  /** Everything received so far. */
  readonly received: () => string
  /** Resolves with everything received once the socket has closed (also after a reset). */
  readonly closed: Promise<{ readonly text: string; readonly error: string | undefined }>
}

/** A raw TCP connection, resolved once connected (the kernel has accepted it; the server may not have yet). */
export const rawConnect = (port: number): Promise<RawConnection> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let text = ""
    let error: string | undefined
    socket.setEncoding("utf8")
    socket.on("data", (chunk: string) => {
      text += chunk
    })
    const closed = new Promise<{ text: string; error: string | undefined }>((done) => {
      socket.once("close", () => done({ text, error }))
    })
    socket.on("error", (e) => {
      error = e.message
    })
    socket.once("connect", () => resolve({ socket, received: () => text, closed }))
    socket.once("error", reject)
  })

/** The first connection the port accepts, tried every few milliseconds while the service starts. */
export const connectOnceListening = (service: ServiceProcess, timeoutMs: number): Promise<RawConnection> =>
  (async () => {
    const deadline = performance.now() + timeoutMs
    for (;;) {
      const connection = await rawConnect(service.port).catch(() => undefined)
      if (connection) return connection
      if (service.hasExited() || performance.now() > deadline)
        throw new Error(`port ${service.port} never accepted a connection\n${service.output()}`)
      await sleep(5)
    }
  })()

/** A complete HTTP/1.1 request (keep-alive, the HTTP/1.1 default). */
export const rawGet = (path: string) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`

/** How many complete responses with a Content-Length body the text holds. */
export const completeResponses = (text: string): number => {
  let count = 0
  let rest = text
  for (;;) {
    const end = rest.indexOf("\r\n\r\n")
    if (end < 0) return count
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(rest.slice(0, end))
    const total = end + 4 + Number(length?.[1] ?? 0)
    if (rest.length < total) return count
    count++
    rest = rest.slice(total)
  }
}
