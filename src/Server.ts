import { HttpApiBuilder, HttpServer } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Cause, Context, Effect, Layer } from "effect"
import { createServer } from "node:http"
import type { Server as NodeServer } from "node:http"
import { internalError } from "./Http.js"

/** The Node server under the Effect one, for the graceful drain that needs its connections. */
export class NodeServerHandle extends Context.Tag("NodeServerHandle")<NodeServerHandle, NodeServer>() {}

// Accepted-but-unread connections look idle to Node; give them this long to show their request before idle
// connections are closed.
const settleMillis = 50
// In-flight requests get this long to finish before their connections are cut.
const graceMillis = 8_000

/**
 * Stops accepting, answers every request already sent (also on keep-alive connections, now told to close), closes
 * idle connections so they cannot hold the exit, and resolves when the last connection has ended. It runs before
 * the Effect server detaches its request handler and before Redis and the database are released.
 */
const drain = (server: NodeServer) =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.on("request", (_request, response) => {
      if (!response.headersSent) response.setHeader("connection", "close")
    })
    const settle = setTimeout(() => {
      const sweep = setInterval(() => server.closeIdleConnections(), 25)
      const cut = setTimeout(() => server.closeAllConnections(), graceMillis)
      server.close(() => {
        clearInterval(sweep)
        clearTimeout(cut)
        resume(Effect.void)
      })
      server.closeIdleConnections()
    }, settleMillis)
    return Effect.sync(() => clearTimeout(settle))
  })

const lastResort = <E, R>(app: HttpApp.Default<E, R>) =>
  Effect.catchAllCause(app, (cause) =>
    Cause.isInterruptedOnly(cause)
      ? Effect.failCause(cause)
      : Effect.as(Effect.logError("request failed unexpectedly", cause), internalError)
  )

const ServeLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const app = yield* HttpApiBuilder.httpApp
    yield* HttpServer.serveEffect(app, lastResort)
    // Added after serveEffect's own finalizer, so it runs first: the handler stays attached while draining.
    const server = yield* NodeServerHandle
    yield* Effect.addFinalizer(() => drain(server))
  })
).pipe(Layer.provide([HttpApiBuilder.Router.Live, HttpApiBuilder.Middleware.layer]))

/** A Node HTTP server on `port` (0: any free port) with its handle. */
export const nodeServer = (port: number) => {
  const server = createServer()
  return Layer.merge(
    NodeHttpServer.layer(() => server, { port }),
    Layer.succeed(NodeServerHandle, server)
  )
}

/** Serves the API routes on the given server layer; the routes' own requirements stay open. */
export const serve = ServeLive
