import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as AppConfig from "../AppConfig.js"
import * as Migrations from "./Migrations.js"
import * as Postgres from "./Postgres.js"

const client = (filename: string) =>
  Layer.unwrapEffect(
    Effect.try({
      try: () => mkdirSync(dirname(filename), { recursive: true }),
      catch: (cause) => new Error(`DB_PATH: cannot create the folder of ${filename}: ${String(cause)}`)
    }).pipe(Effect.orDie, Effect.as(SqliteClient.layer({ filename })))
  )

const busyTimeout = (millis: number) =>
  Layer.effectDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`PRAGMA busy_timeout = ${sql.literal(String(millis))}`.pipe(Effect.orDie)
    )
  )

// An answered write survives a power cut: SQLite syncs the log at each commit. Said, not left to the build, whose
// SQLite gives a database in WAL mode NORMAL (a file opened in it, or switched to it by the client), which does not.
const syncEachCommit = Layer.effectDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA synchronous = FULL`.pipe(Effect.orDie))
)

// WAL (set by the client) lets readers and one writer work at once. SQLite waits for a lock by sleeping the thread,
// the event loop: acceptable while starting, when nothing is served yet and the migrator may need the write lock
// another process holds; not once serving, when it would stop every request. From then on a busy statement fails at
// once and Database.ts waits for the lock on an Effect schedule.
const StartingLive = Layer.merge(busyTimeout(5000), syncEachCommit)
const ServingLive = busyTimeout(0)

const MigratorLive = SqliteMigrator.layer({ loader: Migrations.loader }).pipe(Layer.provide(NodeContext.layer))

/** The SQLite client, opened on `filename` for the life of the runtime and migrated before anything uses it. */
const sqlite = (filename: string) =>
  ServingLive.pipe(Layer.provide(MigratorLive.pipe(Layer.provide(StartingLive))), Layer.provideMerge(client(filename)))

/**
 * The database client for the life of the runtime, migrated before anything uses it: PostgreSQL (Postgres.ts) or
 * SQLite. Everything above it speaks `SqlClient` only.
 */
export const layer = (database: AppConfig.DatabaseSettings): Layer.Layer<SqlClient.SqlClient, unknown> =>
  database._tag === "Postgres" ? Postgres.layer(database) : sqlite(database.path)

/**
 * The client `DATABASE_URL` (or `DB_PATH`) names. One constant for every layer that needs a client, so they share
 * one: layers are memoized by reference.
 */
export const SqlLive: Layer.Layer<SqlClient.SqlClient, unknown> = Layer.unwrapEffect(
  Effect.map(AppConfig.database, layer)
)
