import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Either, Option, ParseResult, Schema } from "effect"
import { endpoints } from "./Endpoints.js"
import { describeIssues, errorResponse } from "./ErrorResponse.js"

// The answers for a request the router did not take, or would misread: 404, 405 with `Allow`, or 400 naming the
// part of the path that is wrong. Worked out from the HttpApi's endpoints, so they follow its routes.

/**
 * Methods served on a path, for the `Allow` header of a 405; empty when the path is unknown. The router answers HEAD
 * wherever it has a GET, so HEAD is listed beside it.
 */
export const allowedMethods = (path: string) => {
  const methods = new Set(endpoints.filter((route) => route.pattern.test(path)).map((route) => route.method))
  return [...methods].flatMap((method): Array<string> => (method === "GET" ? ["GET", "HEAD"] : [method]))
}

/** What is wrong with the parameters of `path` for an endpoint of `template` (`/api/v1/products/:id`). */
const pathProblem = (template: string, pathSchema: Option.Option<Schema.Schema<any, any, unknown>>, path: string) => {
  const names = template.split("/").flatMap((part) => (part.startsWith(":") ? [part.slice(1)] : []))
  const values = path.split("/").filter((_, at) => template.split("/")[at]?.startsWith(":"))
  let params: Record<string, string>
  try {
    params = Object.fromEntries(names.map((name, at) => [name, decodeURIComponent(values[at] ?? "")]))
  } catch {
    return `the path ${path} is not valid percent-encoding`
  }
  const decoded = Option.map(pathSchema, (schema) =>
    Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown, never>)(params)
  )
  if (Option.isSome(decoded) && Either.isLeft(decoded.value)) {
    return describeIssues(ParseResult.ArrayFormatter.formatErrorSync(decoded.value.left))
  }
  return `the path ${path} is not one the service serves`
}

/** The answer for a request the router did not take: 404 for an unknown path, else 405, else 400 naming the part. */
const unrouted = (method: string, path: string) => {
  const allowed = allowedMethods(path)
  if (allowed.length === 0) return errorResponse(404, "not_found", `no route for ${method} ${path}`)
  // The path has this method's shape, yet the router did not take it: a parameter it could not decode (`%ZZ`), or
  // one the router would have cut short (`37;DROP`, see `misreadTarget`).
  if (allowed.includes(method)) {
    const route = endpoints.find(
      (route) => route.method === (method === "HEAD" ? "GET" : method) && route.pattern.test(path)
    )
    return errorResponse(400, "invalid_request", pathProblem(route!.template, route!.pathSchema, path))
  }
  return errorResponse(405, "method_not_allowed", `${method} is not allowed on ${path}`, { allow: allowed.join(", ") })
}

/** The answer for the router's RouteNotFound. */
export const routeNotFound = (request: HttpServerRequest.HttpServerRequest) =>
  unrouted(request.method, request.url.split("?")[0] ?? "/")

/**
 * A request target the router would misread, answered as the contract reads it. The router ends a path at `;`
 * (matrix parameters) and a URL at `#`, so `/api/v1/products/37;DROP` would be product 37 and `/health;x` the health
 * check; here a `;` stays part of its segment (an id is digits only: 400; no such path: 404). A `#` never belongs in
 * a request: a fragment stays in the client, so one that arrives is refused rather than cut off silently (which made
 * `?limit=5#a` a bad `limit`). The fast path (RouteTable.ts) takes neither character, so every such request comes here.
 */
export const misreadTarget = (method: string, url: string) => {
  if (url.includes("#")) {
    return errorResponse(400, "invalid_request", "the request target must not contain '#' (a fragment is not sent)")
  }
  const path = url.split("?")[0]!
  return path.includes(";") ? unrouted(method, path) : undefined
}
