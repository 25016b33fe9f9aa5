import { Effect, Layer } from "effect"
import * as AppConfig from "../AppConfig.js"
import * as PgInvalidations from "./PgInvalidations.js"
import { SqlLive } from "./Sql.js"
import * as SqliteInvalidations from "./SqliteInvalidations.js"

/**
 * The record of invalidations that could not reach the cache, shared through whichever database the service runs
 * on: a table watched through `PRAGMA data_version` in SQLite, a table followed by LISTEN in PostgreSQL.
 */
export const layer = Layer.unwrapEffect(
  Effect.map(AppConfig.database, (database) =>
    database._tag === "Postgres"
      ? PgInvalidations.layer(database).pipe(Layer.provide(SqlLive))
      : SqliteInvalidations.layer(database.path)
  )
)
