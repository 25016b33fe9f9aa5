import type * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Chunk, Context, Effect, Layer } from "effect"
import { docsPaths } from "./Endpoints.js"

/**
 * Swagger UI's page, as the platform's HttpApiSwagger layer builds it, built on the first request for it: the UI's
 * bundle is megabytes of text that a process serving no /docs would hold for nothing. The platform's layer is run on
 * a router of its own and its one route's answer kept.
 */
const swaggerPage = (context: Context.Context<HttpApi.Api>) =>
  Effect.promise(() => import("@effect/platform/HttpApiSwagger")).pipe(
    Effect.flatMap(({ layer }) =>
      Layer.build(layer({ path: docsPaths.ui }).pipe(Layer.provideMerge(HttpApiBuilder.Router.Live)))
    ),
    Effect.flatMap((built) => Context.get(built, HttpApiBuilder.Router).router),
    Effect.flatMap((router) => Chunk.unsafeHead(router.routes).handler),
    Effect.provide(context),
    Effect.scoped
  )

/** Swagger UI at `docsPaths.ui`, loaded when first asked for. */
export const SwaggerLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<HttpApi.Api>()
    const page = yield* Effect.cached(swaggerPage(context))
    yield* router.get(docsPaths.ui, page)
  })
)
