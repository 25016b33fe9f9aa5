import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

// Invalidations that could not reach Redis, kept where every process sharing the database sees them.
// `generation` tells a retry that succeeded apart from a newer failure of the same key.
export default Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql`
    CREATE TABLE cache_invalidations (
      key TEXT PRIMARY KEY,
      generation TEXT NOT NULL,
      failed_at TEXT NOT NULL
    )
  `
)
