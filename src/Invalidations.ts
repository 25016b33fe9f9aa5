import { SqlClient } from "@effect/sql"
import Sqlite from "better-sqlite3"
import { Clock, Context, Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.js"
import { Database, isBusyCause } from "./Database.js"
import { SqlLive } from "./Sql.js"

/**
 * Invalidations that could not reach the cache. While one is pending for a key, the entry under that key may hold
 * what a write replaced, so no process may read it from the cache; the first process that can reach the cache
 * applies the invalidation and clears it. A generation tells that retry apart from a newer failure of the same key.
 */
export class Invalidations extends Context.Tag("Invalidations")<
  Invalidations,
  {
    /** The generation of `key`'s pending invalidation, if any. Asked on every cached read, so it must be cheap. */
    readonly pending: (key: string) => Effect.Effect<string | undefined>
    /** `pending` of many keys at one instant, with one look at the shared record for all of them. */
    readonly pendingAll: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string | undefined>>
    readonly record: (key: string) => Effect.Effect<void>
    /** Clears the pending invalidation of `key` if it is still the one of `generation`. */
    readonly clear: (key: string, generation: string) => Effect.Effect<void>
  }
>() {}

let generations = 0
export const nextGeneration = () => `${process.pid}.${Date.now()}.${++generations}`

/** Kept in this process only: enough for one process, and for tests. */
export const layerLocal = Layer.sync(Invalidations, () => {
  const pending = new Map<string, string>()
  return Invalidations.of({
    pending: (key) => Effect.sync(() => pending.get(key)),
    pendingAll: (keys) => Effect.sync(() => keys.map((key) => pending.get(key))),
    record: (key) => Effect.sync(() => void pending.set(key, nextGeneration())),
    clear: (key, generation) => Effect.sync(() => void (pending.get(key) === generation && pending.delete(key)))
  })
})

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
export const layerShared = Layer.scoped(
  Invalidations,
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const database = yield* Database
    const filename = yield* AppConfig.dbPath
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
