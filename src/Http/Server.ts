import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Cause, Context, Effect, Layer } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import * as AppConfig from "../AppConfig.js"
import * as GracefulServer from "./GracefulServer.js"
import { internalError } from "./ErrorResponse.js"
import * as HttpObservability from "./Observability.js"
import * as FastPath from "./FastPath.js"
import { activeRequests } from "../Metrics.js"
import { settleEndOnClose } from "./NodeResponse.js"
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

/**
 * Every request reaches one Node `request` listener: the fast path (derived from the same HttpApi) answers the
 * catalog's operations spelled canonically, the HttpApi app (through the platform's handler) everything else.
 */
export const ServeLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const app = yield* HttpApiBuilder.httpApp
    const logRequests = yield* Effect.orDie(AppConfig.logRequests)
    // Observability outermost: it times the whole request, and its request id is on lastResort's report too.
    const platform = yield* NodeHttpServer.makeHandler(app, (app) =>
      HttpObservability.observe(lastResort(app), logRequests)
    )
    const ended = () => activeRequests.count--
    // The fast path counts its requests out in the one `close` listener it needs anyway: a listener per request was
    // a measurable share of a hit.
    const fast = yield* FastPath.make({ logRequests, onEnd: ended, platform })
    const dispatch = (request: IncomingMessage, response: ServerResponse) => {
      if (NodeServer.refusedAtEntrance(request, response)) return
      activeRequests.count++
      if (fast(request, response)) return
      response.once("close", ended)
      platform(request, settleEndOnClose(response))
    }
    const { drain, server } = yield* NodeServerHandle
    server.on("request", dispatch)
    // Finalizers run last-added first: the drain, then the handler goes, then Redis and the database are released
    // (by the layers below) only after the last answer.
    yield* Effect.addFinalizer(() => Effect.sync(() => server.off("request", dispatch)))
    yield* Effect.addFinalizer(() => Effect.promise(drain))
  })
).pipe(Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]))

/** A Node HTTP server on `port` (0: any free port) with its handle; Node's defaults where `options` say nothing. */
export const nodeServer = (port: number, options: NodeServer.Options = {}) => {
  const graceful = GracefulServer.make(NodeServer.make(options))
  return Layer.mergeAll(
    NodeHttpServer.layer(() => graceful.server, options.host === undefined ? { port } : { port, host: options.host }),
    Layer.succeed(NodeServerHandle, graceful),
    Layer.succeed(GracefulServer.Draining, graceful.onDrain)
  )
}
