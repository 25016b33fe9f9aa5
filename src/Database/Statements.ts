import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import Sqlite from "better-sqlite3"
import { Context, Effect, Layer } from "effect"
import * as AppConfig from "../AppConfig.js"
import * as GroupCommit from "./GroupCommit.js"
import { SqlLive } from "./Sql.js"

/** A statement prepared once, run with its parameters in order: the rows it returns (none for a plain write). */
export type Statement<A> = (...params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, SqlError>

/**
 * The statements a request runs on every write, prepared once with `?` for each parameter.
 *
 * On SQLite they run straight on a better-sqlite3 connection of their own: through the Effect SQL client, a statement
 * cost about three times the SQLite work itself (a span, a scope, a semaphore and a cache lookup per call: ~180,000
 * instructions against ~45,000 for an UPDATE, counted with callgrind; bench/README.md). The connection never waits
 * for a lock (timeout 0): a refusal is an `SqlError` with SQLite's code, which `Database` retries off the event loop.
 * The statements that write join their turn's transaction (GroupCommit.ts). On PostgreSQL they go through the client,
 * whose cost the network round trip dwarfs.
 */
export class Statements extends Context.Tag("Statements")<
  Statements,
  {
    readonly prepare: <A = never>(text: string) => Statement<A>
    /** Which SQL the texts are written in, where the two databases spell a statement differently. */
    readonly dialect: "sqlite" | "pg"
  }
>() {}

/** On the SQLite file at `filename`, once the client has opened and migrated it. */
const sqlite = (filename: string) =>
  Layer.scoped(
    Statements,
    Effect.gen(function* () {
      yield* SqlClient.SqlClient
      const db = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const db = new Sqlite(filename, { fileMustExist: true, timeout: 0 })
          // Said, not left to the build: better-sqlite3's SQLite opens a file already in WAL mode with NORMAL, which
          // leaves the last commits to a power cut; FULL syncs each commit, so an answered write survives one.
          db.pragma("synchronous = FULL")
          return db
        }),
        (db) => Effect.sync(() => db.close())
      )
      const grouped = GroupCommit.make(db)
      return Statements.of({
        dialect: "sqlite",
        prepare: <A>(text: string): Statement<A> => {
          const statement = db.prepare<Array<unknown>, A>(text)
          // A statement that writes (RETURNING ones too, which also read) joins its turn's transaction.
          if (statement.readonly)
            return (...params) =>
              Effect.try({ try: () => statement.all(...(params as Array<unknown>)), catch: GroupCommit.failed })
          return statement.reader
            ? (...params) => grouped(() => statement.all(...(params as Array<unknown>)))
            : (...params) => grouped(() => (statement.run(...params), []))
        }
      })
    })
  )

/** Through the client, `?` numbered as PostgreSQL wants them (`$1`, `$2`, ...). */
const viaClient = Layer.effect(
  Statements,
  Effect.map(SqlClient.SqlClient, (sql) =>
    Statements.of({
      dialect: "pg",
      prepare: <A>(text: string): Statement<A> => {
        let at = 0
        const numbered = text.replace(/\?/g, () => `$${++at}`)
        return (...params) => sql.unsafe<A & object>(numbered, params)
      }
    })
  )
)

/** The statements of the database `DATABASE_URL` (or `DB_PATH`) names, on the client every layer shares. */
export const layer: Layer.Layer<Statements, unknown> = Layer.unwrapEffect(
  Effect.map(AppConfig.database, (database) => (database._tag === "Postgres" ? viaClient : sqlite(database.path)))
).pipe(Layer.provide(SqlLive))
