import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { Duration, Effect, Layer, Redacted, Schedule } from "effect"
import Pg from "pg"
import type { CustomTypes, Pool, PoolConfig } from "pg"
import type { PostgresSettings } from "../AppConfig.js"
import * as Migrations from "./Migrations.js"

/** The name every connection of the service gives PostgreSQL (pg_stat_activity), so an operator can tell them apart. */
export const applicationName = "product-catalog"

// BIGINT (ids, stock, COUNT(*)) comes back from the driver as text by default, since it may exceed a double; every
// such value this service stores is a safe integer (the schemas say so), so a number is exact.
const bigintOid = 20
const types: CustomTypes = {
  getTypeParser: (oid, format) => (oid === bigintOid ? Number : Pg.types.getTypeParser(oid, format))
}

/**
 * What each connection is opened with. A statement is bounded twice by `DB_STATEMENT_TIMEOUT`: by the server
 * (`statement_timeout`, which also frees the server's work) and by the client (`query_timeout`, for a connection
 * whose server or network stopped answering without closing it); waiting for a connection is bounded by it too. So a
 * lost database answers 503 within that time, never hangs a request.
 */
export const clientConfig = (settings: PostgresSettings): PoolConfig => {
  const timeout = Duration.toMillis(settings.statementTimeout)
  return {
    connectionString: Redacted.value(settings.url),
    connectionTimeoutMillis: timeout,
    statement_timeout: timeout,
    query_timeout: timeout,
    keepAlive: true,
    application_name: applicationName,
    types
  }
}

/** A driver error's message, with the URL's password taken out should a driver ever echo it. */
export const describeError = (settings: PostgresSettings, failure: unknown): string => {
  // Effect.tryPromise's UnknownException and SqlError wrap the driver's error.
  const inner = failure as { readonly error?: unknown; readonly cause?: unknown } | null
  const cause = inner?.error ?? inner?.cause ?? failure
  const message = cause instanceof Error ? cause.message : String(cause)
  const raw = new URL(Redacted.value(settings.url)).password
  let decoded = raw
  try {
    decoded = decodeURIComponent(raw)
  } catch {
    // a malformed escape: the raw form is the one to hide
  }
  return [raw, decoded]
    .filter((secret) => secret !== "")
    .reduce((text, secret) => text.split(secret).join("***"), message)
}

/**
 * At start PostgreSQL may still be coming up (a compose file starts everything at once): ask until it answers, for
 * `DB_START_TIMEOUT` at most, then stop the start with a line that names the variable and where it points.
 */
const awaitReachable = (pool: Pool, settings: PostgresSettings) =>
  Effect.tryPromise(() => pool.query("SELECT 1")).pipe(
    Effect.tapError((error) =>
      Effect.logWarning("PostgreSQL not reachable yet, retrying").pipe(
        Effect.annotateLogs({ database: settings.label, error: describeError(settings, error) })
      )
    ),
    Effect.retry(
      Schedule.exponential("200 millis").pipe(
        Schedule.either(Schedule.spaced("2 seconds")),
        Schedule.upTo(settings.startTimeout)
      )
    ),
    Effect.mapError(
      (error) =>
        new Error(
          `DATABASE_URL: PostgreSQL at ${settings.label} did not answer within ${Duration.format(settings.startTimeout)} (DB_START_TIMEOUT): ${describeError(settings, error)}`
        )
    )
  )

const ClientLive = (settings: PostgresSettings) =>
  PgClient.layerFromPool({
    acquire: Effect.acquireRelease(
      Effect.sync(() => {
        const pool = new Pg.Pool({ ...clientConfig(settings), max: settings.poolSize, idleTimeoutMillis: 30_000 })
        // An idle connection that breaks is dropped by the pool; the next statement opens another.
        pool.on("error", () => {})
        return pool
      }),
      (pool) => Effect.promise(() => pool.end().catch(() => undefined))
    ).pipe(
      Effect.tap((pool) => awaitReachable(pool, settings)),
      Effect.orDie
    ),
    applicationName,
    types
  })

// Any constant: the key instances of this service agree on for "migrating now".
const migrationLock = 720_774_4201

/**
 * Instances that start together against an empty database would each find the migrations table missing and race to
 * create it (PostgreSQL's CREATE TABLE is not safe against a concurrent one), and the loser would stop. So the
 * migrator runs under a session advisory lock, on a connection of its own outside the pool (the migrator takes pool
 * connections meanwhile): the others wait for it, then find nothing left to do. Closing that connection releases
 * the lock, also when the migration fails.
 */
const MigratorLive = (settings: PostgresSettings) =>
  Layer.effectDiscard(
    Effect.acquireUseRelease(
      Effect.tryPromise(async () => {
        const client = new Pg.Client({ ...clientConfig(settings), statement_timeout: 0, query_timeout: 0 })
        client.on("error", () => {})
        try {
          await client.connect()
          await client.query("SELECT pg_advisory_lock($1)", [migrationLock])
          return client
        } catch (error) {
          await client.end().catch(() => undefined)
          throw error
        }
      }),
      () => PgMigrator.run({ loader: Migrations.loader }),
      (client) => Effect.promise(() => client.end().catch(() => undefined))
    ).pipe(
      Effect.mapError(
        (error) => new Error(`DATABASE_URL: migrating ${settings.label} failed: ${describeError(settings, error)}`)
      ),
      Effect.orDie
    )
  ).pipe(Layer.provide(NodeContext.layer))

/** The PostgreSQL client at `DATABASE_URL`, reachable and migrated before anything uses it. */
export const layer = (settings: PostgresSettings): Layer.Layer<SqlClient.SqlClient | PgClient.PgClient> =>
  MigratorLive(settings).pipe(Layer.provideMerge(ClientLive(settings)), Layer.orDie)
