import { HttpApiBuilder, HttpServer } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Context, Effect, Layer } from "effect"
import * as GracefulServer from "./GracefulServer.js"
import * as AppConfig from "./AppConfig.js"
import { fastGet, internalError } from "./Http.js"
import * as HttpObservability from "./HttpObservability.js"
import * as NodeServer from "./NodeServer.js"

/** The Node server under the Effect one, for the graceful drain that needs its connections. */
export class NodeServerHandle extends Context.Tag("NodeServerHandle")<
  NodeServerHandle,
  GracefulServer.GracefulServer
>() {}

const lastResort = <E, R>(app: HttpApp.Default<E, R>) =>
  Effect.catchAllCause(app, (cause) =>
    // A client that hangs up interrupts its request: nothing failed, and there is nobody to answer.
    Cause.isInterrupted(cause)
      ? Effect.failCause(cause)
      : Effect.as(Effect.logError("request failed unexpectedly", cause), internalError)
  )

const ServeLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const app = yield* HttpApiBuilder.httpApp
    const fast = yield* fastGet
    const logRequests = yield* Effect.orDie(AppConfig.logRequests)
    // Observability outermost: it times the whole request, and its request id is on lastResort's report too.
    yield* HttpServer.serveEffect(app, (app) => HttpObservability.observe(lastResort(fast(app)), logRequests))
    // Added after serveEffect's own finalizer, so it runs first: the handler stays attached while draining, and
    // Redis and the database are released only after the last answer.
    const server = yield* NodeServerHandle
    yield* Effect.addFinalizer(() => Effect.promise(server.drain))
  })
).pipe(Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]))

/** A Node HTTP server on `port` (0: any free port) with its handle; Node's defaults where `options` say nothing. */
export const nodeServer = (port: number, options: NodeServer.Options = {}) => {
  const graceful = GracefulServer.make(NodeServer.make(options))
  return Layer.merge(
    NodeHttpServer.layer(() => graceful.server, options.host === undefined ? { port } : { port, host: options.host }),
    Layer.succeed(NodeServerHandle, graceful)
  )
}

/** Serves the API routes on the given server layer; the routes' own requirements stay open. */
export const serve = ServeLive
