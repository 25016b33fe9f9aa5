import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect, FiberRef } from "effect"
import { Api, databaseUnavailable, productNotFound } from "../Api.js"
import type { ProductId } from "../Domain/Product.js"
import { ProductService } from "../ProductService.js"
import { cacheFailedRef } from "./Observability.js"
import * as ReadAnswers from "./ReadAnswers.js"
import { json, readResponse } from "./Responses.js"
import * as WriteAnswers from "./WriteAnswers.js"

/** Logs what the answer hid, and tells the request's record when the cache failed it. */
const noted = (answer: ReadAnswers.ReadAnswer) =>
  answer.cacheFailed
    ? Effect.zipRight(ReadAnswers.logFailure(answer), FiberRef.set(cacheFailedRef, true))
    : ReadAnswers.logFailure(answer)

const notFound = (error: { readonly id: ProductId }) => Effect.fail(productNotFound(error.id))

const unavailable = (error: unknown) =>
  Effect.zipRight(Effect.logError("database failure", error), Effect.fail(databaseUnavailable))

/** The catalog's endpoints: the two cached reads and the three writes, with the same answers as the fast path's. */
export const ProductsLive = HttpApiBuilder.group(Api, "products", (handlers) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    return handlers
      .handle("get", ({ path }) =>
        ReadAnswers.product(products, path.id).pipe(Effect.tap(noted), Effect.map(readResponse))
      )
      .handle("list", ({ urlParams }) =>
        ReadAnswers.page(products, urlParams.offset, urlParams.limit).pipe(Effect.tap(noted), Effect.map(readResponse))
      )
      .handle("create", ({ payload }) =>
        products.create(payload).pipe(
          Effect.map((product) =>
            json(WriteAnswers.created(product), 201, { location: WriteAnswers.locationOf(product) })
          ),
          Effect.catchTags({ SqlError: unavailable })
        )
      )
      .handle("update", ({ path, payload }) =>
        products.update(path.id, payload).pipe(
          Effect.map((product) => json(WriteAnswers.updated(product))),
          Effect.catchTags({ ProductNotFound: notFound, SqlError: unavailable })
        )
      )
      .handle("remove", ({ path }) =>
        products
          .remove(path.id)
          .pipe(
            Effect.as(json(WriteAnswers.deleted)),
            Effect.catchTags({ ProductNotFound: notFound, SqlError: unavailable })
          )
      )
  })
)
