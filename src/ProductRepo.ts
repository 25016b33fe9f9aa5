import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Array, Clock, Effect, Option, Schema } from "effect"
import type { CreateProduct, ProductId, ProductPage, UpdateProduct } from "./Domain/Product.js"
import { Product } from "./Domain/Product.js"
import { trackQuery } from "./Metrics.js"
import { SqlLive } from "./Sql.js"

const PageRow = Schema.extend(Product, Schema.Struct({ total: Schema.Int }))

// Rows come from our own schema; a row that does not decode is a bug, not something a caller can handle.
const decodeProducts = (rows: ReadonlyArray<unknown>) =>
  Schema.decodeUnknown(Schema.Array(Product))(rows).pipe(Effect.orDie)
const decodePageRows = (rows: ReadonlyArray<unknown>) =>
  Schema.decodeUnknown(Schema.Array(PageRow))(rows).pipe(Effect.orDie)

const nowIso = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())

/** Products in SQLite. Parameterised statements only; `SqlError` stays typed so the API can answer 503. */
export class ProductRepo extends Effect.Service<ProductRepo>()("ProductRepo", {
  effect: Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const findById = (id: ProductId): Effect.Effect<Option.Option<Product>, SqlError> =>
      sql`SELECT * FROM products WHERE id = ${id}`.pipe(
        Effect.flatMap(decodeProducts),
        Effect.map(Array.head),
        trackQuery("findById"),
        Effect.withSpan("ProductRepo.findById", { attributes: { id }, captureStackTrace: false })
      )

    // One statement, so the page and its total come from the same snapshot.
    const page = (offset: number, limit: number): Effect.Effect<ProductPage, SqlError> =>
      sql`SELECT *, (SELECT COUNT(*) FROM products) AS total FROM products ORDER BY id LIMIT ${limit} OFFSET ${offset}`.pipe(
        Effect.flatMap(decodePageRows),
        Effect.flatMap((rows) =>
          rows.length > 0
            ? Effect.succeed({ products: rows.map(({ total: _, ...product }) => product), total: rows[0]!.total })
            : Effect.map(sql<{ total: number }>`SELECT COUNT(*) AS total FROM products`, ([row]) => ({
                products: [],
                total: row?.total ?? 0
              }))
        ),
        trackQuery("page"),
        Effect.withSpan("ProductRepo.page", { attributes: { offset, limit }, captureStackTrace: false })
      )

    const insert = (input: CreateProduct): Effect.Effect<Product, SqlError> =>
      nowIso.pipe(
        Effect.flatMap(
          (now) => sql`INSERT INTO products ${sql.insert({ ...input, created_at: now, updated_at: now })} RETURNING *`
        ),
        Effect.flatMap(decodeProducts),
        Effect.map((rows) => rows[0]!),
        trackQuery("insert"),
        Effect.withSpan("ProductRepo.insert", { captureStackTrace: false })
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Option.Option<Product>, SqlError> =>
      nowIso.pipe(
        Effect.flatMap(
          (now) => sql`UPDATE products SET ${sql.update({ ...patch, updated_at: now })} WHERE id = ${id} RETURNING *`
        ),
        Effect.flatMap(decodeProducts),
        Effect.map(Array.head),
        trackQuery("update"),
        Effect.withSpan("ProductRepo.update", { attributes: { id }, captureStackTrace: false })
      )

    const remove = (id: ProductId): Effect.Effect<boolean, SqlError> =>
      sql`DELETE FROM products WHERE id = ${id} RETURNING id`.pipe(
        Effect.map((rows) => rows.length > 0),
        trackQuery("remove"),
        Effect.withSpan("ProductRepo.remove", { attributes: { id }, captureStackTrace: false })
      )

    /** Whether the database answers now; used by /health. */
    const ping: Effect.Effect<void, SqlError> = Effect.asVoid(sql`SELECT 1`).pipe(trackQuery("ping"))

    return { findById, page, insert, update, remove, ping } as const
  }),
  dependencies: [SqlLive]
}) {}
