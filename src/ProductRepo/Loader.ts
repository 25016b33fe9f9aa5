import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Option, Request, RequestResolver, Tracer } from "effect"
import type { Exit } from "effect"
import type { NonEmptyArray } from "effect/Array"
import type { Product, ProductId } from "../Domain/Product.js"
import type { ProductRepo } from "../ProductRepo.js"

// Misses for different ids that arrive together load in one query (DataLoader's idea; Facebook's memcache batched
// its multigets the same way). Concurrent HTTP requests are separate fibers, and Effect batches requests only within
// one fiber's `forEach`/`all`: so a miss's request waits for the end of the event loop's turn (`setImmediate`, after
// every I/O callback of the turn: the Redis replies that arrived together), and one fiber then runs every request of
// the turn through the batched resolver. A lone miss still runs ProductRepo.findById; two or more, findByIds.

interface GetProduct extends Request.Request<Option.Option<Product>, SqlError> {
  readonly _tag: "GetProduct"
  readonly id: ProductId
}

const GetProduct = Request.tagged<GetProduct>("GetProduct")

/** Resolves a batch of GetProduct with one query: `findById` for one id, `findByIds` (`WHERE id IN (...)`) for more. */
export const resolver = (repo: ProductRepo) =>
  RequestResolver.makeBatched((requests: NonEmptyArray<GetProduct>) => {
    const ids = [...new Set(requests.map((request) => request.id))]
    const found: Effect.Effect<ReadonlyMap<number, Product>, SqlError> = ids.length === 1
      ? Effect.map(repo.findById(ids[0]!), (product) =>
          Option.isSome(product) ? new Map([[product.value.id, product.value]]) : new Map()
        )
      : Effect.map(repo.findByIds(ids), (rows) => new Map(rows.map((row) => [row.id, row])))
    return found.pipe(
      Effect.flatMap((products) =>
        Effect.forEach(requests, (request) => Request.succeed(request, Option.fromNullable(products.get(request.id))), {
          discard: true
        })
      ),
      Effect.catchAll((error) => Effect.forEach(requests, (request) => Request.fail(request, error), { discard: true }))
    )
  })

interface Waiting {
  readonly request: GetProduct
  readonly resume: (exit: Exit.Exit<Option.Option<Product>, SqlError>) => void
  /** The asking read's span and tracer: the batch's query spans go under the first one's, to its tracer. */
  readonly parent: Option.Option<Tracer.AnySpan>
  readonly tracer: Tracer.Tracer
}

/**
 * `load(id)`: the product, loaded together with every other id asked for in the same turn of the event loop. The
 * batch runs on `runFork`'s runtime (the service's), so no caller's interruption can cut it short for the others.
 */
export const make = (repo: ProductRepo, runFork: <A, E>(effect: Effect.Effect<A, E>) => unknown) => {
  const batched = resolver(repo)
  let waiting: Array<Waiting> | undefined
  const flush = () => {
    const batch = waiting!
    waiting = undefined
    const run = Effect.forEach(
      batch,
      ({ request, resume }) => Effect.map(Effect.exit(Effect.request(request, batched)), resume),
      { batching: true, discard: true }
    ).pipe(Effect.withRequestCaching(false))
    const traced = batch.find((waiting) => Option.isSome(waiting.parent))
    runFork(
      traced === undefined
        ? run
        : Effect.withTracer(Effect.withParentSpan(run, Option.getOrThrow(traced.parent)), traced.tracer)
    )
  }
  return (id: ProductId): Effect.Effect<Option.Option<Product>, SqlError> =>
    Effect.withFiberRuntime((fiber) =>
      Effect.async((resume) => {
        if (waiting === undefined) {
          waiting = []
          setImmediate(flush)
        }
        const parent = Context.getOption(fiber.currentContext, Tracer.ParentSpan)
        waiting.push({ request: GetProduct({ id }), resume, parent, tracer: fiber.currentTracer })
      })
    )
}
