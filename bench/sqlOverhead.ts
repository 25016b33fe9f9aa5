// Where a query's time goes between better-sqlite3 and @effect/sql: `npx tsx bench/sqlOverhead.ts`.
//
// In-process, one statement after another on one connection, so it measures CPU per statement and nothing else.
// The rows name the steps @effect/sql's Statement runs for every statement (internal/statement.js withConnection and
// sql-sqlite-node's connection), each timed on its own.
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import Database from "better-sqlite3"
import { Cache, Duration, Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

const count = 20_000
const columns = "id, name, description, price, stock, category, created_at, updated_at"
const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "sql-overhead-"))
const filename = Path.join(dir, "products.db")

const raw = new Database(filename)
raw.pragma("journal_mode = WAL")
raw.exec(
  "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, description TEXT, price REAL, stock INT, category TEXT, created_at TEXT, updated_at TEXT)"
)
const insert = raw.prepare(
  "INSERT INTO products (name, description, price, stock, category, created_at, updated_at) VALUES (?, '', 1, 0, '', 'x', 'y')"
)
for (let i = 1; i <= 100; i++) insert.run(`p${i}`)

const micros = (started: number) => (((performance.now() - started) * 1000) / count).toFixed(2).padStart(8)

const findById = raw.prepare(`SELECT ${columns} FROM products WHERE id = ?`)
let started = performance.now()
for (let i = 0; i < count; i++) findById.all((i % 100) + 1)
console.log(`${micros(started)} µs  better-sqlite3, prepared once`)

/** Times `make(i)` run `count` times in a row, after a round to warm up. */
const time = (label: string, make: (i: number) => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    for (let round = 0; round < 2; round++) {
      const started = performance.now()
      for (let i = 0; i < count; i++) yield* make(i)
      if (round === 1) console.log(`${micros(started)} µs  ${label}`)
    }
  })

const program = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* time(
    "@effect/sql: sql`SELECT ... WHERE id = ${id}`",
    (i) => sql`SELECT ${sql.literal(columns)} FROM products WHERE id = ${(i % 100) + 1}`
  )
  yield* time("Effect.try around the prepared statement", (i) => Effect.try(() => findById.all((i % 100) + 1)))
  const semaphore = yield* Effect.makeSemaphore(1)
  const statements = yield* Cache.make({
    capacity: 200,
    timeToLive: Duration.minutes(10),
    lookup: (text: string) => Effect.succeed(text)
  })
  const text = `SELECT ${columns} FROM products WHERE id = ?`
  yield* time("  step: Effect.scoped around the connection", () => Effect.scoped(Effect.void))
  yield* time("  step: the connection semaphore (withPermits)", () => semaphore.withPermits(1)(Effect.void))
  yield* time("  step: the prepared-statement Cache.get", () => statements.get(text))
  yield* time("  step: the sql.execute span (tracer off)", () =>
    Effect.useSpan("sql.execute", { kind: "client", captureStackTrace: false }, () => Effect.void)
  )
}).pipe(Effect.provide(SqliteClient.layer({ filename })), Effect.withTracerEnabled(false))

Effect.runPromise(program).finally(() => {
  raw.close()
  Fs.rmSync(dir, { recursive: true, force: true })
})
