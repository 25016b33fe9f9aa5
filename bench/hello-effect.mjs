// The Effect hello-world: the least an @effect/platform-node server can do per request, built the way the service
// builds its server (a node:http server handed to NodeHttpServer.layer, run by Layer.launch and NodeRuntime.runMain).
// One GET route with a tiny JSON body. A reference in the bench (which runs it with tracing off, as the service runs
// without an OTLP endpoint): what the platform allows a request that does no I/O. Not the yardstick; the baseline is.
//
// env: HTTP_PORT, HELLO_TRACING (on, the platform's default | off: no spans, and no per-request http.server span)
import { HttpMiddleware, HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Function, Layer } from "effect"
import { createServer } from "node:http"

const port = Number(process.env.HTTP_PORT ?? 3200)

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/hello", HttpServerResponse.text('{"message":"hello"}', { contentType: "application/json" }))
)

const tracingOff = Layer.mergeAll(
  Layer.setTracerEnabled(false),
  Layer.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, Function.constTrue)
)

router.pipe(
  HttpServer.serve(),
  Layer.provide(NodeHttpServer.layer(() => createServer(), { port, host: "127.0.0.1" })),
  Layer.provide(process.env.HELLO_TRACING === "off" ? tracingOff : Layer.empty),
  Layer.launch,
  NodeRuntime.runMain
)
