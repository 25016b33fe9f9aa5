import type { SqlError } from "@effect/sql/SqlError"
import { Array as Arr, Effect, FiberRef, Option, Runtime } from "effect"
import * as AppConfig from "./AppConfig.js"
import * as CacheKeys from "./Cache/Keys.js"
import { ReadThrough } from "./Cache/ReadThrough.js"
import type { Served } from "./Cache/ReadThrough.js"
import type { CreateProduct, Product, ProductId, UpdateProduct } from "./Domain/Product.js"
import { ProductNotFound } from "./Domain/Product.js"
import { ProductRepo } from "./ProductRepo.js"
import * as ProductLoader from "./ProductRepo/Loader.js"
import * as Tracing from "./Tracing.js"

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
    const keys = CacheKeys.make(yield* AppConfig.cachePrefix, { maxPages: yield* AppConfig.cacheMaxPages })
    const traced = yield* Tracing.spans

    // What a write removes: a product's value and remembered absence (moving its guard), or every list page.
    const invalidateProduct = (id: ProductId) => readThrough.invalidate(readThrough.entry(keys.product(id)))
    const invalidateLists = readThrough.invalidate(readThrough.indexed(keys.listIndex, keys.listGuard))

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

    /**
     * Reads many products at once (the lean path's batch): one cache lookup, and one database load and one fill for
     * the misses this read holds the leases of. Each is answered through `answer` as soon as its answer is known: a
     * value, or the effect that answers it. See ReadThrough's `readMany`.
     */
    const getByIds = (
      ids: ReadonlyArray<ProductId>,
      answer: (at: number, answer: Served | Effect.Effect<Served, ProductNotFound | SqlError>) => void
    ): Effect.Effect<void> =>
      Effect.suspend(() =>
        readThrough
          .readMany(ids.map(keys.product), {
            loadMany: (ats) =>
              Effect.map(
                loadProducts(ats.map((at) => ids[at]!)),
                Arr.map(Option.map((product) => JSON.stringify(product)))
              ),
            load: (at) => Effect.suspend(() => findJson(ids[at]!)),
            absent: (at) => notFound(ids[at]!)(),
            read: (at) => getById(ids[at]!),
            answer
          })
          .pipe(traced("ProductService.getByIds", { count: ids.length }))
      )

    /** A page as `{"products":[...],"total":N}`, the shape the contract fixes for list entries. */
    const list = (offset: number, limit: number): Effect.Effect<Served, SqlError> =>
      readThrough
        .read(keys.page(offset, limit), {
          load: Effect.suspend(() => Effect.map(repo.page(offset, limit), (page) => Option.some(JSON.stringify(page)))),
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
        Effect.tap((product) => invalidateProduct(product.id)),
        Effect.tap(() => invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.create")
      )

    const update = (id: ProductId, patch: UpdateProduct): Effect.Effect<Product, ProductNotFound | SqlError> =>
      repo.update(id, patch).pipe(
        Effect.flatMap(
          Option.match({ onNone: () => Effect.fail(new ProductNotFound({ id })), onSome: Effect.succeed })
        ),
        Effect.tap(() => invalidateProduct(id)),
        Effect.tap(() => invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.update", { id })
      )

    const remove = (id: ProductId): Effect.Effect<void, ProductNotFound | SqlError> =>
      repo.remove(id).pipe(
        Effect.flatMap((removed) => (removed ? Effect.void : Effect.fail(new ProductNotFound({ id })))),
        Effect.zipRight(invalidateProduct(id)),
        Effect.zipRight(invalidateLists),
        Effect.uninterruptible,
        traced("ProductService.remove", { id })
      )

    return { getById, getByIds, list, create, update, remove } as const
  }),
  dependencies: [ProductRepo.Default, ReadThrough.Default]
}) {}
