import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Effect } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import Pg from "pg"
import type { Client } from "pg"

// The database a test runs on. vitest.config.ts runs the suites that touch the database twice, once per kind
// (TEST_DATABASE=sqlite or postgres), so one test body proves its claim on both.

export type Kind = "sqlite" | "postgres"

/** The kind this run is for; SQLite when unset (a file run on its own outside the projects of vitest.config.ts). */
export const kind: Kind = process.env.TEST_DATABASE === "postgres" ? "postgres" : "sqlite"

/** The PostgreSQL server tests create their databases on: the machine's, trust authentication. */
export const serverUrl = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432"

export interface TestDatabase {
  readonly kind: Kind
  /** What the service is configured with: `DB_PATH`, or `DATABASE_URL`. */
  readonly env: Record<string, string>
  /** A label for test names and messages. */
  readonly name: string
  /** Removes the products table through a connection of its own, under a running app: from then on it fails. */
  readonly dropProductsTable: Effect.Effect<void>
  /** Runs one statement through a connection of its own (the other connection of an admin or another process). */
  readonly execute: (statement: string) => Effect.Effect<ReadonlyArray<Record<string, unknown>>>
}

/** A folder removed with its scope, for SQLite files. */
export const tempDir = (prefix = "catalog-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )

/** A fresh SQLite file in a temp folder (in a folder that does not exist yet, which the service must create). */
export const sqlite = (file?: string): Effect.Effect<TestDatabase, never, Scope.Scope> =>
  Effect.gen(function* () {
    const path = file ?? Path.join(yield* tempDir(), "nested", "products.db")
    const execute = (statement: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<Record<string, unknown>>(statement)).pipe(
        Effect.provide(SqliteClient.layer({ filename: path })),
        Effect.orDie
      )
    return {
      kind: "sqlite",
      env: { DB_PATH: path },
      name: path,
      dropProductsTable: Effect.asVoid(execute("DROP TABLE products")),
      execute
    }
  })

const admin = <A>(url: string, use: (client: Client) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new Pg.Client({ connectionString: url })
    client.on("error", () => {})
    await client.connect()
    try {
      return await use(client)
    } finally {
      await client.end().catch(() => undefined)
    }
  })

/**
 * A database of its own on the machine's PostgreSQL, randomly named and dropped with the scope (connections still
 * open to it are ended: a test's service may still hold some). Nothing else on the server is touched.
 */
export const postgres: Effect.Effect<TestDatabase, never, Scope.Scope> = Effect.gen(function* () {
  const name = `catalog_test_${process.pid}_${Math.random().toString(36).slice(2, 10)}`
  yield* Effect.acquireRelease(
    admin(`${serverUrl}/postgres`, (client) => client.query(`CREATE DATABASE ${name}`)),
    () => admin(`${serverUrl}/postgres`, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  )
  const url = `${serverUrl}/${name}`
  const execute = (statement: string) => admin(url, (client) => client.query(statement).then((result) => result.rows))
  return {
    kind: "postgres",
    env: { DATABASE_URL: url },
    name,
    dropProductsTable: Effect.asVoid(execute("DROP TABLE products")),
    execute
  }
})

/** A fresh database of this run's kind. */
export const make: Effect.Effect<TestDatabase, never, Scope.Scope> = kind === "postgres" ? postgres : sqlite()
