import * as SqlClient from "@effect/sql/SqlClient"
import Sqlite from "better-sqlite3"
import { Clock, Effect, Layer } from "effect"
import { Invalidations, nextGeneration } from "../Cache/Invalidations.js"
import { Database, isBusyCause } from "../Database.js"
import { SqlLive } from "./Sql.js"

/**
 * Kept in the shared SQLite database, so a write whose invalidation one process could not deliver is seen by every
 * other process before its next cached read, also when only that one process lost Redis.
 *
 * The per-read check is `PRAGMA data_version` on a second, read-only connection: it changes only when another
 * connection commits, so the table itself is read again only after some write. A plain better-sqlite3 statement
 * costs about a microsecond there, where a query through the Effect SQL client would cost the hot path far more.
 * That connection never waits for a lock either (timeout 0): in WAL mode a reader is refused only in rare moments
 * (another connection recovering the log), and then the keys seen last are the answer, until the next read asks again.
 */
export const layer = (filename: string) =>
  Layer.scoped(
    Invalidations,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const database = yield* Database
      const watcher = yield* Effect.acquireRelease(
        Effect.sync(() => new Sqlite(filename, { readonly: true, fileMustExist: true, timeout: 0 })),
        (db) => Effect.sync(() => db.close())
      )
      const dataVersion = watcher.prepare<[], number>("PRAGMA data_version").pluck()
      const rows = watcher.prepare<[], { key: string; generation: string }>(
        "SELECT key, generation FROM cache_invalidations"
      )
      let seenVersion = -1
      let known = new Map<string, string>()
      const current = () => {
        try {
          const version = dataVersion.get()!
          if (version !== seenVersion) {
            known = new Map(rows.all().map((row) => [row.key, row.generation]))
            seenVersion = version
          }
        } catch (error) {
          if (!isBusyCause(error)) throw error
        }
        return known
      }

      return Invalidations.of({
        pending: (key) => Effect.sync(() => current().get(key)),
        pendingAll: (keys) =>
          Effect.sync(() => {
            const known = current()
            return keys.map((key) => known.get(key))
          }),
        record: (key) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const row = { key, generation: nextGeneration(), failed_at: new Date(now).toISOString() }
            return database.write(sql`INSERT INTO cache_invalidations ${sql.insert(row)}
            ON CONFLICT(key) DO UPDATE SET generation = excluded.generation, failed_at = excluded.failed_at`)
          }).pipe(
            Effect.asVoid,
            Effect.catchAll((error) => Effect.logError("could not record a pending cache invalidation", error))
          ),
        clear: (key, generation) =>
          sql`DELETE FROM cache_invalidations WHERE key = ${key} AND generation = ${generation}`.pipe(
            Effect.asVoid,
            // Left in place (also when the lock is held: a read must not wait for it), it is retried on a later read.
            Effect.catchAll(() => Effect.void)
          )
      })
    })
  ).pipe(Layer.provide([SqlLive, Database.Default]))
