import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import * as ApiDocument from "./Api/Document.js"
import {
  ExpectationFailed,
  InternalError,
  MethodNotAllowed,
  PayloadTooLarge,
  RequestHeaderFieldsTooLarge,
  RequestTimeout
} from "./Api/Errors.js"
import { CacheApi, DashboardApi, HealthApi, MetricsApi, ProductsApi } from "./Api/Groups.js"

// The contract by concern: the errors (Api/Errors.ts), the bodies and parameters (Api/Schemas.ts), the operations
// (Api/Groups.ts), what the generated document needs added (Api/Document.ts). Their names are all read from here.
export * from "./Api/Errors.js"
export { CacheApi, DashboardApi, HealthApi, MetricsApi, ProductsApi } from "./Api/Groups.js"
export { CacheStatsBody, defaultLimit, ListParams, maxLimit } from "./Api/Schemas.js"

/** The contract of `../shared/spec/API.md` as an HttpApi: routes, schemas, statuses and the OpenAPI document. */
export class Api extends HttpApi.make("catalog")
  .add(ProductsApi)
  .add(CacheApi)
  .add(HealthApi)
  .add(MetricsApi)
  .add(DashboardApi)
  // Any operation may give these: the contract middleware refuses a body over 1 MiB whatever the route, the
  // last-resort answer (Http/Server.ts) is a 500, and the Node server's own refusals come before any route.
  .addError(PayloadTooLarge)
  .addError(InternalError)
  // Answered by the Node server before any route (Http/NodeServer.ts), whatever the path, in the same JSON.
  .addError(RequestTimeout)
  .addError(ExpectationFailed)
  .addError(RequestHeaderFieldsTooLarge)
  .annotateContext(
    OpenApi.annotations({
      title: "Product catalog with Redis cache-aside",
      version: "0.1.0",
      license: { name: "MIT", url: "https://opensource.org/licenses/MIT" },
      servers: [{ url: "/", description: "The instance serving this document" }],
      description: ApiDocument.description,
      transform: ApiDocument.finish
    })
  )
  // The 405 is the answer for a method no operation has, so no endpoint declares it: `finish` adds it to every
  // operation of a path (components.responses.MethodNotAllowed, with `Allow`), and refers to its body here.
  .annotate(HttpApi.AdditionalSchemas, [MethodNotAllowed]) {}
