import { HttpServer } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.js"
import { CacheLive } from "./CacheLive.js"
import { RoutesLive } from "./Http.js"
import * as Server from "./Server.js"

const ServerLive = Layer.unwrapEffect(Effect.map(AppConfig.httpPort, Server.nodeServer))

const ConfigChecked = Layer.effectDiscard(Effect.asVoid(AppConfig.all))

Server.serve.pipe(
  Layer.provide(RoutesLive),
  Layer.provide(CacheLive),
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.provide(ConfigChecked),
  Layer.launch,
  NodeRuntime.runMain
)
