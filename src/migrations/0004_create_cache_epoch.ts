import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

// The cache's epoch and the Redis histories seen under it (Cache/Epoch.ts): one row, which every instance reads when
// it (re)connects to Redis and replaces, compare-and-set on `epoch`, when it meets a history the row does not name.
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`
    CREATE TABLE cache_epoch (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      epoch TEXT NOT NULL,
      histories TEXT NOT NULL
    )
  `
)
