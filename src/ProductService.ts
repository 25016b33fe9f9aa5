import type { SqlError } from "@effect/sql/SqlError"
import { Effect, FiberRef, Option, Runtime } from "effect"
import * as AppConfig from "./AppConfig.js"
import * as CacheKeys from "./Cache/Keys.js"
import { ReadThrough } from "./Cache/ReadThrough.js"
import type { Served } from "./Cache/ReadThrough.js"
import type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
import { ProductNotFound } from "./Domain/Product.js"
import { ProductRepo } from "./ProductRepo.js"
import * as ProductLoader from "./ProductRepo/Loader.js"
import * as Tracing from "./Tracing.js"

/** One read of a batch: a product by id, or a list page. */
export type CatalogRead =
  | { readonly id: ProductId; readonly offset?: undefined; readonly limit?: undefined }
  | { readonly id?: undefined; readonly offset: number; readonly limit: number }

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
    const loadProduct = (yield* FiberRef.get(FiberRef.currentTracerEnabled))
      ? (id: ProductId) => repo.findById(id)
      : ProductLoader.make(repo, runFork)
    const keys = CacheKeys.make(yield* AppConfig.cachePrefix, {
      maxPages: yield* AppConfig.cacheMaxPages,
      // A cluster spreads keys by hash slot; the tags keep each script's keys on one.
      tagged: (yield* AppConfig.redisTopology)._tag === "Cluster"
    })
    const traced = yield* Tracing.spans

    // What a write removes, in one step: a product's value and remembered absence (moving its guard), and every list
    // page (moving theirs).
    const lists = readThrough.indexed(keys.listIndex, keys.listGuard)
    const invalidateWrite = (id: ProductId) => readThrough.invalidate(readThrough.entry(keys.product(id)), lists)

    const findJson = (id: ProductId) =>
      Effect.map(
        loadProduct(id),
        Option.map((product) => JSON.stringify(product))
      )
    const notFound = (id: ProductId) => () => Effect.fail(new ProductNotFound({ id }))

    // Built only when needed: a hit neither retries an invalidation nor touches the database.
    const getById = (id: ProductId): Effect.Effect<Served, ProductNotFound | SqlError> =>
      readThrough
        .read(keys.product(id), { load: Effect.suspend(() => findJson(id)), absent: notFound(id) })
        .pipe(traced("ProductService.getById", { id }))

    const loadPage = (offset: number, limit: number) =>
      Effect.suspend(() => Effect.map(repo.page(offset, limit), (page) => Option.some(JSON.stringify(page))))

    // A catalog read's slot, load, absence and read alone: the product's or the page's.
    const slotOf = (read: CatalogRead) =>
      read.id !== undefined ? keys.product(read.id) : keys.page(read.offset, read.limit)
    const loadOf = (read: CatalogRead) =>
      read.id !== undefined ? Effect.suspend(() => findJson(read.id)) : loadPage(read.offset, read.limit)
    const absentOf = (read: CatalogRead) =>
      read.id !== undefined ? notFound(read.id)() : Effect.dieMessage("a list page was reported absent")

    /** One read alone: `getById` or `list`. */
    const get = (read: CatalogRead): Effect.Effect<Served, ProductNotFound | SqlError> =>
      read.id !== undefined ? getById(read.id) : list(read.offset, read.limit)

    /**
     * Reads taken together (the lean path's batch): products and list pages, with one cache lookup, and for the misses
     * whose leases it takes one query for the products and one per page, and one fill. Each read is answered through
     * `answer` as soon as its answer is known: a value, or the effect that answers it. See ReadThrough's `readMany`.
     */
    const getMany = (
      reads: ReadonlyArray<CatalogRead>,
      answer: (at: number, answer: Served | Effect.Effect<Served, ProductNotFound | SqlError>) => void
    ): Effect.Effect<void> =>
      Effect.suspend(() =>
        readThrough
          .readMany(reads.map(slotOf), {
            loadMany: (ats) => loadTogether(ats.map((at) => reads[at]!)),
            load: (at) => loadOf(reads[at]!),
            absent: (at) => absentOf(reads[at]!),
            read: (at) => get(reads[at]!),
            answer
          })
          .pipe(traced("ProductService.getMany", { count: reads.length }))
      )

    /** The values of `reads`, in order: every product with one query, each page with its own. */
    const loadTogether = (reads: ReadonlyArray<CatalogRead>) => {
      const ids = reads.flatMap((read) => (read.id !== undefined ? [read.id] : []))
      return Effect.flatMap(ids.length === 0 ? Effect.succeed([]) : loadProducts(ids), (products) => {
        let next = 0
        return Effect.forEach(reads, (read) =>
          read.id !== undefined
            ? Effect.succeed(Option.map(products[next++]!, (product) => JSON.stringify(product)))
            : loadPage(read.offset, read.limit)
        )
      })
    }

    /** A page as `{"products":[...],"total":N}`, the shape the contract fixes for list entries. */
    const list = (offset: number, limit: number): Effect.Effect<Served, SqlError> =>
      readThrough
        .read(keys.page(offset, limit), {
          load: loadPage(offset, limit),
          // A page slot has no absent key, so a page is never reported absent.
          absent: () => Effect.dieMessage("a list page was reported absent")
        })
        .pipe(traced("ProductService.list", { offset, limit }))

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
