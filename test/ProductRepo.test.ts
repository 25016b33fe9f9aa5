import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Metric, Option } from "effect"
import type { CreateProduct, ProductId } from "../src/Domain/Product.js"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlLive } from "../src/Database/Sql.js"
import * as Statements from "../src/Database/Statements.js"
import { dbCommits } from "../src/Metrics.js"
import { ProductRepo } from "../src/ProductRepo.js"
import * as Databases from "./support/Databases.js"

// The repository against a real database, migrated by the service's own migrator: SQLite or PostgreSQL, whichever
// this run is for (vitest.config.ts runs the file on both). What a client sees must not depend on the dialect.

/** The service's settings for `database`, as its environment would give them. */
const configOf = (database: Databases.TestDatabase) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(database.env))))

const repoOn = (database: Databases.TestDatabase) =>
  Effect.map(Layer.build(ProductRepo.Default.pipe(Layer.provide(configOf(database)))), Context.get(ProductRepo))

/** `PRAGMA synchronous` on the client's connection and on the statements' connection of a start on `database`. */
const synchronousOn = (database: Databases.TestDatabase) =>
  Effect.gen(function* () {
    const started = yield* Layer.build(Layer.merge(Statements.layer, SqlLive).pipe(Layer.provide(configOf(database))))
    const [client] = yield* Context.get(started, SqlClient.SqlClient)<{ synchronous: number }>`PRAGMA synchronous`
    const [statements] = yield* Context.get(started, Statements.Statements).prepare<{ synchronous: number }>(
      "PRAGMA synchronous"
    )()
    return [client?.synchronous, statements?.synchronous]
  })

const fresh = Effect.gen(function* () {
  const database = yield* Databases.make
  return { database, repo: yield* repoOn(database) }
})

const laptop: CreateProduct = {
  name: "Laptop",
  description: "High-performance laptop",
  price: 999.99,
  stock: 50,
  category: "Electronics"
}

const isoUtc = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

describe(`ProductRepo on ${Databases.kind}`, () => {
  it.scopedLive(
    "insert answers the stored row: an id, the fields as given, ISO timestamps; findById reads it back",
    () =>
      Effect.gen(function* () {
        const { repo } = yield* fresh
        const created = yield* repo.insert(laptop)
        expect(created).toMatchObject({ id: 1, ...laptop })
        expect(Object.keys(created)).toEqual([
          "id",
          "name",
          "description",
          "price",
          "stock",
          "category",
          "created_at",
          "updated_at"
        ])
        expect(created.created_at).toMatch(isoUtc)
        expect(created.updated_at).toBe(created.created_at)
        expect(yield* repo.findById(created.id)).toEqual(Option.some(created))
        expect(yield* repo.findById(2 as ProductId)).toEqual(Option.none())
      })
  )

  it.scopedLive(
    "findByIds answers the rows of the ids it finds, each once, whatever the order asked and with absent ids",
    () =>
      Effect.gen(function* () {
        const { repo } = yield* fresh
        const made = []
        for (let i = 0; i < 4; i++) made.push(yield* repo.insert({ ...laptop, name: `Laptop ${i}`, stock: i }))
        const [first, second, , fourth] = made
        const found = yield* repo.findByIds([fourth!.id, 99 as ProductId, first!.id, fourth!.id, second!.id])
        expect([...found].sort((a, b) => a.id - b.id)).toEqual([first, second, fourth])
        expect(yield* repo.findByIds([98 as ProductId, 99 as ProductId])).toEqual([])
      })
  )

  it.scopedLive("values at the edges of the schemas come back exactly: doubles, safe integers, any Unicode text", () =>
    Effect.gen(function* () {
      const { repo } = yield* fresh
      const edge: CreateProduct = {
        name: "Ünïcødé 🚀 \"quoted\" 'single' \\ back",
        description: "x".repeat(1000),
        price: 0.1 + 0.2,
        stock: Number.MAX_SAFE_INTEGER,
        category: "漢字"
      }
      const created = yield* repo.insert(edge)
      const read = Option.getOrThrow(yield* repo.findById(created.id))
      expect(read).toEqual(created)
      expect(read).toMatchObject(edge)
      expect(typeof read.id).toBe("number")
      expect(typeof read.stock).toBe("number")
      const tiny = yield* repo.insert({ ...laptop, price: Number.MIN_VALUE, stock: 0 })
      expect(Option.getOrThrow(yield* repo.findById(tiny.id)).price).toBe(Number.MIN_VALUE)
      // The largest id a path may name is looked up, not refused by the database.
      expect(yield* repo.findById(Number.MAX_SAFE_INTEGER as ProductId)).toEqual(Option.none())
    })
  )

  it.scopedLive("a page is ordered by id and carries the total; past the end it is empty with the total", () =>
    Effect.gen(function* () {
      const { repo } = yield* fresh
      expect(yield* repo.page(0, 10)).toEqual({ products: [], total: 0 })
      const created = []
      for (let n = 1; n <= 5; n++) created.push(yield* repo.insert({ ...laptop, name: `P${n}` }))
      const page = yield* repo.page(1, 2)
      expect(page).toEqual({ products: created.slice(1, 3), total: 5 })
      expect(typeof page.total).toBe("number")
      expect(yield* repo.page(0, 100)).toEqual({ products: created, total: 5 })
      expect(yield* repo.page(5, 10)).toEqual({ products: [], total: 5 })
    })
  )

  it.scopedLive("update changes only the given fields and updated_at; an absent id is none", () =>
    Effect.gen(function* () {
      const { repo } = yield* fresh
      const created = yield* repo.insert(laptop)
      yield* Effect.sleep("2 millis")
      const updated = Option.getOrThrow(yield* repo.update(created.id, { price: 899.99, stock: 45 }))
      expect(updated).toMatchObject({ ...created, price: 899.99, stock: 45, updated_at: expect.any(String) })
      expect(updated.created_at).toBe(created.created_at)
      expect(updated.updated_at > created.updated_at).toBe(true)
      expect(yield* repo.findById(created.id)).toEqual(Option.some(updated))
      expect(yield* repo.update(99 as ProductId, { price: 1 })).toEqual(Option.none())
    })
  )

  it.scopedLive("remove answers whether a row went; a removed id is never handed out again", () =>
    Effect.gen(function* () {
      const { repo } = yield* fresh
      const first = yield* repo.insert(laptop)
      const second = yield* repo.insert(laptop)
      expect(yield* repo.remove(second.id)).toBe(true)
      expect(yield* repo.remove(second.id)).toBe(false)
      expect(yield* repo.findById(second.id)).toEqual(Option.none())
      const third = yield* repo.insert(laptop)
      expect(third.id).toBeGreaterThan(second.id)
      expect((yield* repo.page(0, 10)).products.map((product) => product.id)).toEqual([first.id, third.id])
    })
  )

  it.scopedLive("the table's checks hold whatever the caller sends: a price of 0 or a negative stock is refused", () =>
    Effect.gen(function* () {
      const { repo } = yield* fresh
      for (const bad of [{ price: 0 }, { stock: -1 }]) {
        const exit = yield* Effect.exit(repo.insert({ ...laptop, ...bad }))
        expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("SqlError")
      }
      expect(yield* repo.page(0, 10)).toEqual({ products: [], total: 0 })
    })
  )

  it.scopedLive.skipIf(Databases.kind !== "sqlite")(
    "on SQLite the writes of one turn commit as one transaction, and a write the table refuses fails alone",
    () =>
      Effect.gen(function* () {
        const { repo } = yield* fresh
        const ids: Array<ProductId> = []
        for (let i = 0; i < 6; i++) ids.push((yield* repo.insert(laptop)).id)
        const commits = Effect.map(Metric.value(dbCommits), ({ count }) => count)
        const before = yield* commits
        // Started in one turn: five good updates and, in their midst, one that breaks the stock check.
        const exits = yield* Effect.forEach(
          ids,
          (id, at) => Effect.exit(repo.update(id, { stock: at === 2 ? -1 : 100 + at })),
          { concurrency: "unbounded" }
        )
        expect((yield* commits) - before).toBe(1)
        exits.forEach((exit, at) =>
          at === 2
            ? expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("SqlError")
            : expect(Exit.isSuccess(exit) && Option.getOrThrow(exit.value).stock).toBe(100 + at)
        )
        const stocks = yield* Effect.forEach(ids, (id) => Effect.map(repo.findById(id), Option.getOrThrow))
        expect(stocks.map(({ stock }) => stock)).toEqual([100, 101, 50, 103, 104, 105])
        // Alone in its turn a write is its own transaction: refused, it commits nothing and leaves none open.
        const refused = yield* Effect.exit(repo.update(ids[0]!, { stock: -1 }))
        expect(Exit.isFailure(refused)).toBe(true)
        const stored = yield* repo.update(ids[0]!, { stock: 7 })
        expect([(yield* commits) - before, Option.getOrThrow(stored).stock]).toEqual([2, 7])
      })
  )

  it.scopedLive.skipIf(Databases.kind !== "sqlite")(
    "on SQLite every connection that writes syncs each commit (synchronous = FULL), on a first start and on one after it, when the file is in WAL mode already",
    () =>
      Effect.gen(function* () {
        const database = yield* Databases.make
        const first = yield* synchronousOn(database)
        const again = yield* synchronousOn(database)
        // 2 is FULL; SQLite's build gives a database in WAL mode 1, NORMAL.
        expect([first, again]).toEqual([
          [2, 2],
          [2, 2]
        ])
      })
  )

  it.scopedLive("ping reads the products table: it fails with a SqlError once the table is gone", () =>
    Effect.gen(function* () {
      const { database, repo } = yield* fresh
      yield* repo.ping
      yield* database.dropProductsTable
      const exit = yield* Effect.exit(repo.ping)
      expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag).toBe("SqlError")
    })
  )

  it.scopedLive("a second start on a migrated database migrates nothing and keeps the rows", () =>
    Effect.gen(function* () {
      const { database, repo } = yield* fresh
      const created = yield* repo.insert(laptop)
      const again = yield* repoOn(database)
      expect(yield* again.findById(created.id)).toEqual(Option.some(created))
      const migrations = yield* database.execute("SELECT migration_id FROM effect_sql_migrations ORDER BY migration_id")
      expect(migrations.map((row) => Number(row.migration_id))).toEqual([1, 2, 3, 4])
    })
  )
})
