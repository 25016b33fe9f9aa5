import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Effect } from "effect"
import { Api } from "../Api.js"
import * as AppConfig from "../AppConfig.js"
import * as HealthCheck from "../Health.js"
import { json, timestamp } from "./Responses.js"

/** GET /health: 503 only when the products cannot be read; a lost cache or troubled writes are "degraded". */
export const HealthLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  Effect.gen(function* () {
    const check = yield* HealthCheck.make
    const service = yield* AppConfig.serviceName
    return handlers.handle("health", () =>
      Effect.map(Effect.zip(check, timestamp), ([health, at]) =>
        json(
          JSON.stringify({
            service,
            status: health.status,
            checks: { database: health.database, cache: health.cache },
            timestamp: at,
            ...(health.writes === "ok" ? {} : { database_writes: health.writes }),
            cache_topology: health.topology.kind,
            ...(health.topology.masters === undefined ? {} : { cache_masters: health.topology.masters })
          }),
          health.database === "down" ? 503 : 200
        )
      )
    )
  })
)
