import type { SqlError } from "@effect/sql/SqlError"
import { Data, Effect, FiberRef, Option, Runtime } from "effect"
import * as AppConfig from "./AppConfig.js"
import * as CacheKeys from "./Cache/Keys.js"
import { ReadThrough } from "./Cache/ReadThrough.js"
import type { ReadItem, Served } from "./Cache/ReadThrough.js"
import type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
import { ProductNotFound } from "./Domain/Product.js"
import { ProductRepo } from "./ProductRepo.js"
import * as ProductLoader from "./ProductRepo/Loader.js"
import * as Tracing from "./Tracing.js"
import * as TurnBatch from "./TurnBatch.js"

/** One read of the catalog: a product by id, or a list page. */
export type CatalogRead = Data.TaggedEnum<{
  Product: { readonly id: ProductId }
  Page: { readonly offset: number; readonly limit: number }
}>
export const CatalogRead = Data.taggedEnum<CatalogRead>()

const isProduct = CatalogRead.$is("Product")

/**
 * What a read answers: the product's or the page's JSON text as the cache holds it or the database gave it, and where
 * it came from. The engine's own type, exported here so that HTTP depends on the service, not on the engine.
 */
export type CatalogAnswer = Served

/** A catalog read and how the engine reads it. */
interface CatalogItem<A> extends ReadItem<SqlError, A> {
  readonly read: CatalogRead
}

/**
 * The catalog, read through the cache (Cache/ReadThrough.ts, which also counts) and written to the database first,
 * then invalidated: this service only says which keys a product and a page live under and how each is loaded.
 */
export class ProductService extends Effect.Service<ProductService>()("ProductService", {
  effect: Effect.gen(function* () {
    const repo = yield* ProductRepo
    const readThrough = yield* ReadThrough
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    // Misses for different ids in one turn of the event loop load in one query.
    // With tracing on, each read loads alone, under its own span.
    const loadProducts = ProductLoader.loadMany(repo)
    const tracingOn = yield* FiberRef.get(FiberRef.currentTracerEnabled)
    const loadProduct = tracingOn ? (id: ProductId) => repo.findById(id) : ProductLoader.make(repo, runFork)
    const keys = CacheKeys.make(yield* AppConfig.cachePrefix, {
      maxPages: yield* AppConfig.cacheMaxPages,
      // A cluster spreads keys by hash slot; the tags keep each script's keys on one.
      tagged: (yield* AppConfig.redisTopology)._tag === "Cluster"
    })
    const traced = yield* Tracing.spans

    // What a write removes: a product's value and remembered absence (moving its guard), and every list page (moving
    // theirs). The writes committed in one turn of the event loop send theirs together, after the turn: one script
    // for all their products and the pages once, instead of one per write. Each write still answers only once its
    // removals are done (or recorded pending), so no read after its answer finds what it replaced.
    // With tracing on, each write's removals go alone, under its span.
    const lists = readThrough.indexed(keys.listIndex, keys.listGuard)
    const invalidateAlone = (id: ProductId) => readThrough.invalidate(readThrough.entry(keys.product(id)), lists)
    const invalidateTogether = TurnBatch.make({
      keyOf: String,
      fetch: (ids: ReadonlyArray<ProductId>) =>
        Effect.as(
          readThrough.invalidate(...ids.map((id) => readThrough.entry(keys.product(id))), lists),
          ids.map(() => undefined)
        ),
      runFork
    })
    const invalidateWrite = tracingOn ? invalidateAlone : invalidateTogether

    const findJson = (id: ProductId) =>
      Effect.map(
        loadProduct(id),
        Option.map((product) => JSON.stringify(product))
      )
    const notFound = (id: ProductId) => () => Effect.fail(new ProductNotFound({ id }))
    // A page slot has no absent key, so a page is never reported absent.
    const pageAbsent = () => Effect.dieMessage("a list page was reported absent")

    const loadPage = (offset: number, limit: number) =>
      Effect.suspend(() => Effect.map(repo.page(offset, limit), (page) => Option.some(JSON.stringify(page))))

    // A read as the engine reads it: its slot, load and absence. Built only when needed: a hit neither retries an
    // invalidation nor touches the database.
    const productItem = (read: Data.TaggedEnum.Value<CatalogRead, "Product">): CatalogItem<ProductNotFound> => ({
      read,
      slot: keys.product(read.id),
      load: Effect.suspend(() => findJson(read.id)),
      absent: notFound(read.id)
    })
    const pageItem = (read: Data.TaggedEnum.Value<CatalogRead, "Page">): CatalogItem<never> => ({
      read,
      slot: keys.page(read.offset, read.limit),
      load: loadPage(read.offset, read.limit),
      absent: pageAbsent
    })
    // A `switch`, not `$match`: every read of a batch, hits included, passes here, and `$match` measurably slowed a hit
    // (bench/README.md).
    const itemOf = (read: CatalogRead): CatalogItem<ProductNotFound> => {
      switch (read._tag) {
        case "Product":
          return productItem(read)
        case "Page":
          return pageItem(read)
      }
    }

    const getById = (id: ProductId): Effect.Effect<CatalogAnswer, ProductNotFound | SqlError> =>
      readThrough.read(productItem(CatalogRead.Product({ id }))).pipe(traced("ProductService.getById", { id }))

    /** A page as `{"products":[...],"total":N}`, the shape the contract fixes for list entries. */
    const list = (offset: number, limit: number): Effect.Effect<CatalogAnswer, SqlError> =>
      readThrough
        .read(pageItem(CatalogRead.Page({ offset, limit })))
        .pipe(traced("ProductService.list", { offset, limit }))

    /** One read alone: `getById` or `list`. */
    const get: (read: CatalogRead) => Effect.Effect<CatalogAnswer, ProductNotFound | SqlError> = CatalogRead.$match({
      Product: ({ id }) => getById(id),
      Page: ({ limit, offset }) => list(offset, limit)
    })

    /**
     * Reads taken together (the fast path's batch): products and list pages, with one cache lookup, and for the misses
     * whose leases it takes one query for the products and one per page, and one fill. Each read is answered through
     * `answer` as soon as its answer is known, settled (an `Exit`) when its value is. See ReadThrough's `readMany`.
     */
    const getMany = (
      reads: ReadonlyArray<CatalogRead>,
      answer: (at: number, answer: Effect.Effect<CatalogAnswer, ProductNotFound | SqlError>) => void
    ): Effect.Effect<void> =>
      Effect.suspend(() =>
        readThrough
          .readMany(reads.map(itemOf), { loadMany: (items) => loadTogether(items.map(({ read }) => read)), answer })
          .pipe(traced("ProductService.getMany", { count: reads.length }))
      )

    /** The values of `reads`, in order: every product with one query, each page with its own. */
    const loadTogether = (reads: ReadonlyArray<CatalogRead>) => {
      const ids = reads.filter(isProduct).map(({ id }) => id)
      return Effect.flatMap(ids.length === 0 ? Effect.succeed([]) : loadProducts(ids), (products) => {
        let next = 0
        return Effect.forEach(
          reads,
          CatalogRead.$match({
            Product: () => Effect.succeed(Option.map(products[next++]!, (product) => JSON.stringify(product))),
            Page: ({ limit, offset }) => loadPage(offset, limit)
          })
        )
      })
    }

    // Writes commit first, then invalidate: moving the guards voids any fill that read the old row. A write runs to
    // its end whatever its client does: interrupted between the commit and the invalidations (a client hanging up
    // interrupts its request), it would leave cached pages showing what it replaced until their TTL.
    const create = (input: CreateProduct): Effect.Effect<Product, SqlError> =>
      repo.insert(input).pipe(
        // The id key too: a "not found" may have been remembered for it.
        Effect.tap((product) => invalidateWrite(product.id)),
        Effect.uninterruptible,
        traced("ProductService.create")
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Product, ProductNotFound | SqlError> =>
      repo.update(id, patch).pipe(
        Effect.flatMap(
          Option.match({ onNone: () => Effect.fail(new ProductNotFound({ id })), onSome: Effect.succeed })
        ),
        Effect.tap(() => invalidateWrite(id)),
        Effect.uninterruptible,
        traced("ProductService.update", { id })
      )

    const remove = (id: ProductId): Effect.Effect<void, ProductNotFound | SqlError> =>
      repo.remove(id).pipe(
        Effect.flatMap((removed) => (removed ? Effect.void : Effect.fail(new ProductNotFound({ id })))),
        Effect.zipRight(invalidateWrite(id)),
        Effect.uninterruptible,
        traced("ProductService.remove", { id })
      )

    return { getById, list, get, getMany, create, update, remove } as const
  }),
  dependencies: [ProductRepo.Default, ReadThrough.Default]
}) {}
