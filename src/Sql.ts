import { NodeContext } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { SqliteClient, SqliteMigrator } from "@effect/sql-sqlite-node"
import { Effect, Layer } from "effect"
import { mkdirSync } from "node:fs"
import { dirname } from "node:path"
import * as AppConfig from "./AppConfig.js"
import createProducts from "./migrations/0001_create_products.js"
import createCacheInvalidations from "./migrations/0002_create_cache_invalidations.js"

const ClientLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const filename = yield* AppConfig.dbPath
    yield* Effect.try({
      try: () => mkdirSync(dirname(filename), { recursive: true }),
      catch: (cause) => new Error(`DB_PATH: cannot create the folder of ${filename}: ${String(cause)}`)
    }).pipe(Effect.orDie)
    return SqliteClient.layer({ filename })
  })
)

// WAL (set by the client) lets readers and one writer work at once; the busy timeout makes a second process
// sharing the file wait for the write lock instead of failing at once.
const PragmasLive = Layer.effectDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`PRAGMA busy_timeout = 5000`.pipe(Effect.orDie))
)

const MigratorLive = SqliteMigrator.layer({
  loader: SqliteMigrator.fromRecord({
    "0001_create_products": createProducts,
    "0002_create_cache_invalidations": createCacheInvalidations
  })
}).pipe(Layer.provide(NodeContext.layer))

/** The SQLite client, opened on `DB_PATH` for the life of the runtime and migrated before anything uses it. */
export const SqlLive = MigratorLive.pipe(Layer.provide(PragmasLive), Layer.provideMerge(ClientLive))
