import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Array, Clock, Effect, Option } from "effect"
import { Database } from "./Database.js"
import type { CreateProduct, Product, ProductId, ProductPage, UpdateProduct } from "./Domain/Product.js"
import { trackQuery } from "./Metrics.js"
import { SqlLive } from "./Database/Sql.js"
import * as Statements from "./Database/Statements.js"
import * as Tracing from "./Tracing.js"

// Rows are not decoded again: they come from our own table, whose columns and CHECKs hold what Product's schema
// says, and every value in it entered through a decoded request. Decoding them cost the miss path more than the
// query did. The column list fixes the order of the JSON a client sees (Product's field order).
const columns = "id, name, description, price, stock, category, created_at, updated_at"
type PageRow = Product & { readonly total: number }

const nowIso = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

/**
 * Products in SQLite. Parameterised statements only; `SqlError` stays typed so the API can answer 503. Each statement
 * runs through `Database`, which waits out another process's lock without holding up the event loop.
 */
export class ProductRepo extends Effect.Service<ProductRepo>()("ProductRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const database = yield* Database
    const statements = yield* Statements.Statements
    const traced = yield* Tracing.spans

    // What every write runs, and a read alone, as statements prepared once (Database/Statements.ts). An update binds
    // NULL for each field its patch leaves out, which keeps the field's value (no column takes NULL): one text for
    // every patch.
    const selectOne = statements.prepare<Product>(`SELECT ${columns} FROM products WHERE id = ?`)
    const insertOne = statements.prepare<Product>(
      `INSERT INTO products (name, description, price, stock, category, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ${columns}`
    )
    const updateOne = statements.prepare<Product>(
      `UPDATE products SET name = COALESCE(?, name), description = COALESCE(?, description), price = COALESCE(?, price), stock = COALESCE(?, stock), category = COALESCE(?, category), updated_at = ? WHERE id = ? RETURNING ${columns}`
    )
    const deleteOne = statements.prepare<{ id: ProductId }>("DELETE FROM products WHERE id = ? RETURNING id")
    // A batch of misses on SQLite: one text for any number of ids (a JSON array), so it is prepared once too.
    const selectMany =
      statements.dialect === "sqlite"
        ? statements.prepare<Product>(`SELECT ${columns} FROM products WHERE id IN (SELECT value FROM json_each(?))`)
        : undefined

    const findById = (id: ProductId): Effect.Effect<Option.Option<Product>, SqlError> =>
      selectOne(id).pipe(
        Effect.map(Array.head),
        database.read,
        trackQuery("findById"),
        traced("ProductRepo.findById", { id })
      )

    /**
     * Several products in one statement (misses batched by ProductLoader), in no particular order; absent ids are
     * simply not in the answer. On PostgreSQL a plain `IN (...)` through the client, whose cost the round trip dwarfs.
     */
    const findByIds = (ids: ReadonlyArray<ProductId>): Effect.Effect<ReadonlyArray<Product>, SqlError> =>
      (selectMany !== undefined
        ? selectMany(JSON.stringify(ids))
        : sql<Product>`SELECT ${sql.literal(columns)} FROM products WHERE ${sql.in("id", ids)}`
      ).pipe(database.read, trackQuery("findByIds"), traced("ProductRepo.findByIds", { count: ids.length }))

    // One statement, so the page and its total come from the same snapshot.
    const page = (offset: number, limit: number): Effect.Effect<ProductPage, SqlError> =>
      sql<PageRow>`SELECT ${sql.literal(columns)}, (SELECT COUNT(*) FROM products) AS total FROM products ORDER BY id LIMIT ${limit} OFFSET ${offset}`.pipe(
        Effect.flatMap((rows) =>
          rows.length > 0
            ? Effect.succeed({ products: rows.map(({ total: _, ...product }) => product), total: rows[0]!.total })
            : Effect.map(sql<{ total: number }>`SELECT COUNT(*) AS total FROM products`, ([row]) => ({
                products: [],
                total: row?.total ?? 0
              }))
        ),
        database.read,
        trackQuery("page"),
        traced("ProductRepo.page", { offset, limit })
      )

    const insert = (input: CreateProduct): Effect.Effect<Product, SqlError> =>
      nowIso.pipe(
        Effect.flatMap((now) =>
          insertOne(input.name, input.description, input.price, input.stock, input.category, now, now)
        ),
        Effect.map((rows) => rows[0]!),
        database.write,
        trackQuery("insert"),
        traced("ProductRepo.insert")
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Option.Option<Product>, SqlError> =>
      nowIso.pipe(
        Effect.flatMap((now) =>
          updateOne(
            patch.name ?? null,
            patch.description ?? null,
            patch.price ?? null,
            patch.stock ?? null,
            patch.category ?? null,
            now,
            id
          )
        ),
        Effect.map(Array.head),
        database.write,
        trackQuery("update"),
        traced("ProductRepo.update", { id })
      )

    const remove = (id: ProductId): Effect.Effect<boolean, SqlError> =>
      deleteOne(id).pipe(
        Effect.map((rows) => rows.length > 0),
        database.write,
        trackQuery("remove"),
        traced("ProductRepo.remove", { id })
      )

    /** Whether the products can be read now (the table, not just the file); used by /health. */
    const ping: Effect.Effect<void, SqlError> = Effect.asVoid(sql`SELECT 1 FROM products LIMIT 1`).pipe(
      database.read,
      trackQuery("ping")
    )

    return { findById, findByIds, page, insert, update, remove, ping } as const
  }),
  dependencies: [SqlLive, Statements.layer, Database.Default]
}) {}
