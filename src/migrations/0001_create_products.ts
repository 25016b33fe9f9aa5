import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

// AUTOINCREMENT (an identity column in PostgreSQL): a deleted product's id is never handed out again, so no cached
// answer can outlive its product under a new one.
//
// The dialects differ in three named ways. PostgreSQL's REAL is four bytes, so prices are DOUBLE PRECISION (SQLite's
// REAL is already eight); ids and stock are BIGINT, as a path id or a stock may be any safe integer (Database/Postgres.ts
// reads BIGINT back as a number); timestamps stay TEXT in both, the ISO-8601 strings the contract shows, written by
// ProductRepo, so both databases answer the same bytes.
export default Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql.onDialectOrElse({
    pg: () => sql`
      CREATE TABLE products (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        price DOUBLE PRECISION NOT NULL CHECK (price > 0),
        stock BIGINT NOT NULL DEFAULT 0 CHECK (stock >= 0),
        category TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )
    `,
    orElse: () => sql`
      CREATE TABLE products (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        price REAL NOT NULL CHECK (price > 0),
        stock INTEGER NOT NULL DEFAULT 0 CHECK (stock >= 0),
        category TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      )
    `
  })
)
