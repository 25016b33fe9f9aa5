// The Effect hello-world: the least an @effect/platform-node server can do per request, built the way the service
// builds its server (a node:http server handed to NodeHttpServer.layer, run by Layer.launch and NodeRuntime.runMain).
// One GET route with a tiny JSON body. The bench's target: a cache hit by id should reach 0.9x this.
//
// env: HTTP_PORT
import { HttpRouter, HttpServer, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Layer } from "effect"
import { createServer } from "node:http"

const port = Number(process.env.HTTP_PORT ?? 3200)

const router = HttpRouter.empty.pipe(
  HttpRouter.get("/hello", HttpServerResponse.text('{"message":"hello"}', { contentType: "application/json" }))
)

router.pipe(
  HttpServer.serve(),
  Layer.provide(NodeHttpServer.layer(() => createServer(), { port, host: "127.0.0.1" })),
  Layer.launch,
  NodeRuntime.runMain
)
