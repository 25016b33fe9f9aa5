import { describe, expect, it } from "@effect/vitest"
import Sqlite from "better-sqlite3"
import { Context, Effect, Layer, Logger, LogLevel } from "effect"
import type { Scope } from "effect"
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as MemoryCache from "../../src/Cache/Memory.js"
import { request, sleep } from "../support/ServiceProcess.js"
import type { Reply } from "../support/ServiceProcess.js"
import * as TestApp from "../support/TestApp.js"
import { App } from "../support/TestApp.js"

// Other processes on the service's SQLite file: one holding the write lock, one making the products table
// unreadable, one making writes fail. The service's loop must stay free, and /health must say what it sees.

const root = fileURLToPath(new URL("../..", import.meta.url))

/** A second process holding `BEGIN EXCLUSIVE` on `file` from when this resolves until `release` (or the scope ends). */
const lockedByAnotherProcess = (file: string) =>
  Effect.acquireRelease(
    Effect.async<{ readonly release: () => Promise<void> }>((resume) => {
      const child = spawn(
        process.execPath,
        [
          "-e",
          `const db = new (require("better-sqlite3"))(process.env.FILE)
           db.exec("BEGIN EXCLUSIVE")
           console.log("locked")
           process.stdin.once("data", () => { db.exec("COMMIT"); db.close(); process.exit(0) })`
        ],
        { cwd: root, env: { ...process.env, FILE: file }, stdio: ["pipe", "pipe", "inherit"] }
      )
      const exited = new Promise<void>((done) => child.once("exit", () => done()))
      const release = () => {
        child.stdin?.end("release\n")
        return exited
      }
      child.stdout?.once("data", () => resume(Effect.succeed({ release })))
      child.once("exit", (code) => resume(Effect.dieMessage(`the locking process exited (${code}) before locking`)))
    }),
    ({ release }) => Effect.promise(() => Promise.race([release(), sleep(2_000)]))
  )

/** The app in this process on a file in a temp folder, which tests also open from outside. */
const appOn = (env: Record<string, string> = {}): Effect.Effect<{ port: number; file: string }, never, Scope.Scope> =>
  Effect.gen(function* () {
    const file = Path.join(yield* TestApp.tempDir(), "products.db")
    const app = yield* Effect.map(
      Layer.build(TestApp.layer({ cache: MemoryCache.layer, env: { DB_PATH: file, ...env } })),
      Context.get(App)
    )
    return { port: Number(new URL(app.url).port), file }
  })

const call = (port: number, method: string, path: string, json?: unknown) =>
  Effect.promise(() => request(port, method, path, { ...(json === undefined ? {} : { json }), timeoutMs: 15_000 }))

const busyRetries = (port: number) =>
  Effect.map(call(port, "GET", "/metrics"), (reply) => Number(/^db_busy_retries_total (\S+)$/m.exec(reply.text)?.[1]))

/** A cached product: created, then read twice so the second read is a hit. */
const cachedProduct = (port: number) =>
  Effect.gen(function* () {
    const created = yield* call(port, "POST", "/api/v1/products", { name: "Lamp", price: 10 })
    const id = created.body.product.id as number
    yield* call(port, "GET", `/api/v1/products/${id}`)
    expect((yield* call(port, "GET", `/api/v1/products/${id}`)).body.from_cache).toBe(true)
    return id
  })

const priceInFile = (file: string, id: number) => {
  const db = new Sqlite(file, { readonly: true })
  try {
    return (db.prepare("SELECT price FROM products WHERE id = ?").get(id) as { price: number }).price
  } finally {
    db.close()
  }
}

/** Another connection changes the schema under the running app. */
const alter = (file: string, statement: string) =>
  Effect.sync(() => {
    const db = new Sqlite(file)
    db.exec(statement)
    db.close()
  })

describe("another process holds the SQLite write lock", () => {
  it.scopedLive(
    "hits and /health keep answering at once; a write waits DB_BUSY_TIMEOUT, answers 503 and changes nothing",
    () =>
      Effect.gen(function* () {
        const { port, file } = yield* appOn({ DB_BUSY_TIMEOUT: "1s" })
        const id = yield* cachedProduct(port)
        const retriesBefore = yield* busyRetries(port)
        const lock = yield* lockedByAnotherProcess(file)

        let write: Reply | undefined
        const writing = request(port, "PUT", `/api/v1/products/${id}`, { json: { price: 99 }, timeoutMs: 15_000 }).then(
          (reply) => (write = reply)
        )
        // While the write waits: hits and /health, one after another (bounded in count).
        const hits: Array<Reply> = []
        const healths: Array<Reply> = []
        let lastHealthWhileWaiting: Reply | undefined
        for (let round = 0; round < 300 && write === undefined; round++) {
          hits.push(yield* call(port, "GET", `/api/v1/products/${id}`))
          const health = yield* call(port, "GET", "/health")
          healths.push(health)
          if (write === undefined) lastHealthWhileWaiting = health
        }
        yield* Effect.promise(() => writing)

        expect(write!.status, write!.text).toBe(503)
        expect(write!.body.error).toBe("unavailable")
        // The loop was free all along: many answers, each far below the second the write waited.
        for (const hit of hits) {
          expect([hit.status, hit.body.from_cache]).toEqual([200, true])
          expect(hit.millis).toBeLessThan(500)
        }
        for (const health of healths) {
          expect(health.status).toBe(200)
          expect(health.millis).toBeLessThan(500)
        }
        expect(hits.length).toBeGreaterThanOrEqual(5)
        // Reads work (database "up"); writes are held up, and /health says so while they wait.
        expect(lastHealthWhileWaiting?.body).toMatchObject({
          status: "degraded",
          checks: { database: "up", cache: "up" },
          database_writes: "busy"
        })
        expect(yield* busyRetries(port)).toBeGreaterThan(retriesBefore)

        yield* Effect.promise(lock.release)
        expect(priceInFile(file, id)).toBe(10)
        // Once a write gets through, /health is plainly healthy again.
        expect((yield* call(port, "PUT", `/api/v1/products/${id}`, { price: 11 })).status).toBe(200)
        const health = yield* call(port, "GET", "/health")
        expect(health.body.status).toBe("healthy")
        expect(Object.keys(health.body)).toEqual(["service", "status", "checks", "timestamp", "cache_topology"])
      }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )

  it.scopedLive("a write that waits goes through once the lock is released within DB_BUSY_TIMEOUT", () =>
    Effect.gen(function* () {
      const { port, file } = yield* appOn({ DB_BUSY_TIMEOUT: "15s" })
      const id = yield* cachedProduct(port)
      const retriesBefore = yield* busyRetries(port)
      const lock = yield* lockedByAnotherProcess(file)

      const writing = request(port, "PUT", `/api/v1/products/${id}`, { json: { price: 42 }, timeoutMs: 15_000 })
      // Released only once the write has been refused at least once, i.e. while it waits.
      for (let poll = 0; poll < 100 && (yield* busyRetries(port)) === retriesBefore; poll++) yield* Effect.sleep(50)
      expect(yield* busyRetries(port)).toBeGreaterThan(retriesBefore)
      yield* Effect.promise(lock.release)

      const write = yield* Effect.promise(() => writing)
      expect(write.status, write.text).toBe(200)
      expect(write.body.product.price).toBe(42)
      expect(priceInFile(file, id)).toBe(42)
      // The write invalidated the cached entry as usual.
      expect((yield* call(port, "GET", `/api/v1/products/${id}`)).body).toMatchObject({
        product: { price: 42 },
        from_cache: false
      })
    })
  )
})

describe("/health checks what reads and writes need", () => {
  it.scopedLive("an unreadable products table is 503 unhealthy, database down; readable again, healthy", () =>
    Effect.gen(function* () {
      const { port, file } = yield* appOn()
      expect((yield* call(port, "GET", "/health")).body.status).toBe("healthy")

      yield* alter(file, "ALTER TABLE products RENAME TO products_elsewhere")
      const down = yield* call(port, "GET", "/health")
      expect(down.status).toBe(503)
      expect(down.body).toMatchObject({ status: "unhealthy", checks: { database: "down" } })

      yield* alter(file, "ALTER TABLE products_elsewhere RENAME TO products")
      expect((yield* call(port, "GET", "/health")).body.status).toBe("healthy")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )

  it.scopedLive("a write that failed recently is degraded, database up, database_writes failing", () =>
    Effect.gen(function* () {
      const { port, file } = yield* appOn()
      const id = yield* cachedProduct(port)
      // Stands for a full disk or a broken file: every update fails, reads still work.
      yield* alter(
        file,
        "CREATE TRIGGER refuse_updates BEFORE UPDATE ON products BEGIN SELECT RAISE(FAIL, 'refused'); END"
      )
      const retriesBefore = yield* busyRetries(port)
      const failed = yield* call(port, "PUT", `/api/v1/products/${id}`, { price: 20 })
      expect(failed.status).toBe(503)
      // Not a lock: failed at once, never retried.
      expect(yield* busyRetries(port)).toBe(retriesBefore)

      const health = yield* call(port, "GET", "/health")
      expect(health.status).toBe(200)
      expect(health.body).toMatchObject({
        status: "degraded",
        checks: { database: "up", cache: "up" },
        database_writes: "failing"
      })

      yield* alter(file, "DROP TRIGGER refuse_updates")
      expect((yield* call(port, "PUT", `/api/v1/products/${id}`, { price: 21 })).status).toBe(200)
      expect((yield* call(port, "GET", "/health")).body.status).toBe("healthy")
    }).pipe(Logger.withMinimumLogLevel(LogLevel.None))
  )
})
