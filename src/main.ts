import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import cluster from "node:cluster"
import * as v8 from "node:v8"
import * as AppConfig from "./AppConfig.js"
import * as Cluster from "./Cluster.js"
import * as Dashboard from "./Dashboard.js"
import { HttpLive } from "./Http.js"
import * as Server from "./Http/Server.js"
import * as Logging from "./Logging.js"
import * as Services from "./Services.js"
import * as Tracing from "./Tracing.js"

// A request's objects die young. Once most objects from one allocation site outlive a few young collections, as they
// do while a burst of misses waits on the database, V8 allocates that site's objects straight into the old
// generation and seldom changes its mind: every later request then leaves its garbage to the costly full
// collections. Measured after a cold start (README, "Benchmarks"): a cache hit 34 µs of CPU with it, 27 µs without.
v8.setFlagsFromString("--no-allocation-site-pretenuring")
// Under load some of those objects still reach the old generation (a request waiting its turn outlives two young
// collections), where they die soon after. V8 lets the old generation grow to several times what is live before it
// collects it: a peak of ~225 MB for ~40 MB live under writes. Growing it by half what is live keeps the peak near
// 150 MB (the plain Node server's: ~120 MB), for a full collection every second or so under load, incremental.
v8.setFlagsFromString("--heap-growing-percent=50")

const ServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig.httpServer, ({ port, ...options }) => Server.nodeServer(port, options))
)

const ConfigChecked = Layer.effectDiscard(Effect.asVoid(AppConfig.all))

const ServiceLive = HttpLive.pipe(
  Layer.provide(Dashboard.Live),
  Layer.provide(Services.Live),
  Layer.provide(Services.CacheLive),
  HttpServer.withLogAddress,
  Layer.provide(ServerLive),
  // Built before everything above, so all of it logs and traces through them.
  Layer.provide(Tracing.layer),
  Layer.provide(Logging.layer),
  Layer.provide(ConfigChecked)
)

// One process, or with WORKERS=N a primary that supervises N of them (Cluster.ts).
Effect.flatMap(AppConfig.workers, (workers) =>
  workers > 1 && cluster.isPrimary
    ? Effect.zipRight(AppConfig.all, Cluster.supervise(workers).pipe(Effect.provide(Logging.layer)))
    : Layer.launch(ServiceLive)
).pipe(NodeRuntime.runMain)
