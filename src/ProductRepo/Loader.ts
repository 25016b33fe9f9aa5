import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import * as TurnBatch from "../TurnBatch.js"
import type { Product, ProductId } from "../Domain/Product.js"
import type { ProductRepo } from "../ProductRepo.js"

// Misses for different ids that arrive together load in one query (DataLoader's idea; Facebook's memcache batched
// its multigets the same way). Concurrent HTTP requests are separate fibers, so a miss's load waits for the end of
// the event loop's turn (after every I/O callback of the turn: the Redis replies that arrived together), and one
// query then loads every id asked for in that turn: `findById` for one, `findByIds` (`WHERE id IN (...)`) for more.

/** The products of `ids` (none where there is no such product), in that order, with one query. */
export const loadMany =
  (repo: ProductRepo) =>
  (ids: ReadonlyArray<ProductId>): Effect.Effect<ReadonlyArray<Option.Option<Product>>, SqlError> =>
    ids.length === 1
      ? Effect.map(repo.findById(ids[0]!), (product) => [product])
      : Effect.map(repo.findByIds(ids), (rows) => {
          const byId = new Map(rows.map((row) => [row.id, row]))
          return ids.map((id) => Option.fromNullable(byId.get(id)))
        })

/**
 * `load(id)`: the product, loaded together with every other id asked for in the same turn of the event loop. The
 * batch runs on `runFork`'s runtime (the service's), so no caller's interruption can cut it short for the others.
 */
export const make = (
  repo: ProductRepo,
  runFork: (effect: Effect.Effect<void>) => unknown
): ((id: ProductId) => Effect.Effect<Option.Option<Product>, SqlError>) =>
  TurnBatch.make({ keyOf: (id: ProductId) => String(id), fetch: loadMany(repo), runFork })
