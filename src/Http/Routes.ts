import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Layer } from "effect"
import { Api } from "../Api.js"
import { ContractLive, RequireJsonLive, RequireNoBodyLive } from "./Contract.js"
import { SwaggerLive } from "./Docs.js"
import { docsPaths } from "./Endpoints.js"
import { HealthLive } from "./Health.js"
import { ProductsLive } from "./Products.js"
import { MetricsLive, StatsLive } from "./Stats.js"

/**
 * The whole API: endpoints, the contract's error shapes, and the OpenAPI document with Swagger UI at /docs.
 * It needs the services (ProductService, ProductRepo, CacheStats, Cache), and the handlers of the "dashboard" group
 * (Dashboard.Live), which main.ts or a test provides.
 */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([ProductsLive, StatsLive, HealthLive, MetricsLive]),
  Layer.provide([RequireJsonLive, RequireNoBodyLive])
)

export const DocsLive = Layer.mergeAll(
  SwaggerLive,
  HttpApiBuilder.middlewareOpenApi({ path: docsPaths.document })
).pipe(Layer.provide(ApiLive))

/** The HttpApi app's own routes: the API, /docs, and the contract's 404/405; the dashboard mounts its page beside. */
export const RoutesLive = Layer.mergeAll(ApiLive, DocsLive, ContractLive)
