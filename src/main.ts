import { HttpServer } from "@effect/platform"
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import * as AppConfig from "./AppConfig.js"
import * as MemoryCache from "./Cache/Memory.js"
import * as RedisCache from "./Cache/Redis.js"
import { RoutesLive } from "./Http.js"
import * as Server from "./Server.js"

const CacheLive = Layer.unwrapEffect(
  Effect.map(AppConfig.cacheBackend, (backend) => (backend === "memory" ? MemoryCache.layer : RedisCache.layer))
)

const ServerLive = Layer.unwrapEffect(Effect.map(AppConfig.httpPort, Server.nodeServer))

Server.serve.pipe(
  Layer.provide(RoutesLive),
  Layer.provide(CacheLive),
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  Layer.launch,
  NodeRuntime.runMain
)
