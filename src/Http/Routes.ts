import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import { Layer } from "effect"
import { Api } from "../Api.js"
import * as Dashboard from "../Dashboard.js"
import { ContractLive, RequireJsonLive, RequireNoBodyLive } from "./Contract.js"
import { SwaggerLive } from "./Docs.js"
import { docsPaths } from "./Endpoints.js"
import { HealthLive } from "./Health.js"
import { ProductsLive } from "./Products.js"
import { MetricsLive, StatsLive } from "./Stats.js"

/**
 * The whole API: endpoints, the contract's error shapes, and the OpenAPI document with Swagger UI at /docs.
 * It needs the services (ProductService, ProductRepo, CacheStats, Cache), which main.ts or a test provides.
 */
export const ApiLive = HttpApiBuilder.api(Api).pipe(
  Layer.provide([ProductsLive, StatsLive, HealthLive, MetricsLive, Dashboard.FeedLive]),
  Layer.provide([RequireJsonLive, RequireNoBodyLive])
)

export const DocsLive = Layer.mergeAll(
  SwaggerLive,
  HttpApiBuilder.middlewareOpenApi({ path: docsPaths.document })
).pipe(Layer.provide(ApiLive))

/** Every route the HttpApi app serves: the API, /docs, the dashboard's page, and the contract's 404/405. */
export const RoutesLive = Layer.mergeAll(ApiLive, DocsLive, Dashboard.PageLive, ContractLive)
