import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, FiberRef, HashMap, LogLevel } from "effect"
import type { Exit } from "effect"
import { randomUUID } from "node:crypto"
import type { Labels } from "../Metrics.js"
import { httpRequestDuration, httpRequests, labels } from "../Metrics.js"
import * as Answered from "./Answered.js"
import { dashboardPaths, docsPaths, endpoints, templatePattern } from "./Endpoints.js"
import * as SecurityHeaders from "./SecurityHeaders.js"

// Runs around the whole app, outside the router: it sees every answer, including the contract's 404/405 and the
// last-resort 500. The router does not tell it which route matched, so the template is found again here from the
// same HttpApi: one map lookup for static paths, one regex per path with a parameter (there is one).

const templates = [
  ...new Set([
    ...endpoints.map((route) => route.template),
    docsPaths.ui,
    docsPaths.document,
    dashboardPaths.page,
    dashboardPaths.file
  ])
]
const staticRoutes = new Set(templates.filter((template) => !template.includes(":")))
const paramRoutes = templates
  .filter((template) => template.includes(":"))
  .map((template) => ({ template, pattern: templatePattern(template) }))

/** The route template a request URL falls under, `unmatched` when none: a label must never be the raw path. */
export const routeOf = (url: string): string => {
  const query = url.indexOf("?")
  let path = query === -1 ? url : url.slice(0, query)
  if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1)
  if (staticRoutes.has(path)) return path
  for (const route of paramRoutes) if (route.pattern.test(path)) return route.template
  return "unmatched"
}

// Clients choose the method; an unknown one must not mint label values.
const knownMethods = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])

// Bounded: route templates, known methods and statuses are all finite.
const seriesCache = new Map<string, { readonly requests: Labels; readonly duration: Labels }>()

const seriesOf = (route: string, method: string, status: number) => {
  const key = `${method} ${route} ${status}`
  let series = seriesCache.get(key)
  if (series === undefined) {
    series = { requests: labels({ route, method, status: String(status) }), duration: labels({ route }) }
    seriesCache.set(key, series)
  }
  return series
}

// A process-unique prefix and a counter: unique enough to follow one request through the logs, and free.
const bootId = randomUUID().slice(0, 8)
let sequence = 0
const acceptableId = /^[\x21-\x7e]{1,128}$/

/** The caller's `X-Request-Id` if it is sane (printable, at most 128 characters), else a fresh one. */
export const requestIdOf = (given: string | undefined) =>
  given !== undefined && acceptableId.test(given) ? given : `${bootId}-${(++sequence).toString(36)}`

/**
 * Set by a handler whose read the cache failed (its answer says `X-Cache: MISS`), read back when the request is
 * recorded: the HttpApi's answer carries no field for it, and the request runs in one fiber from start to record.
 */
export const cacheFailedRef = FiberRef.unsafeMake(false)

/** Counts and times one answered (or, as 499, abandoned) request, and hands it to whoever listens (Answered.ts). */
export const record = (
  route: string,
  method: string,
  status: number,
  elapsedMillis: number,
  path: string,
  xCache: string | undefined,
  cacheFailed = false
) => {
  const known = knownMethods.has(method) ? method : "OTHER"
  const series = seriesOf(route, known, status)
  httpRequests.unsafeUpdate(1, series.requests)
  httpRequestDuration.unsafeUpdate(elapsedMillis / 1000, series.duration)
  if (Answered.heard()) Answered.publish({ method: known, path, status, xCache, elapsedMillis, cacheFailed })
}

/** The `LOG_REQUESTS` line; checked first so a level above info skips building its annotations, not just printing. */
export const logRequest = (line: {
  readonly method: string
  readonly route: string
  readonly status: number
  readonly elapsedMillis: number
  readonly requestId: string
  readonly xCache: string | undefined
  readonly cacheFailed?: boolean
}) =>
  Effect.withFiberRuntime<void>((fiber) =>
    LogLevel.greaterThan(fiber.getFiberRef(FiberRef.currentMinimumLogLevel), LogLevel.Info)
      ? Effect.void
      : Effect.logInfo("http request").pipe(
          Effect.annotateLogs({
            method: knownMethods.has(line.method) ? line.method : "OTHER",
            route: line.route,
            status: line.status,
            duration_ms: Math.round(line.elapsedMillis * 1000) / 1000,
            request_id: line.requestId,
            ...(line.xCache === undefined ? {} : { from_cache: line.xCache !== "MISS" }),
            ...(line.cacheFailed === true ? { cache_error: true } : {})
          })
        )
  )

const finish = (
  request: HttpServerRequest.HttpServerRequest,
  requestId: string,
  started: number,
  response: HttpServerResponse.HttpServerResponse,
  logRequests: boolean
) =>
  Effect.withFiberRuntime<void>((fiber) => {
    const elapsedMillis = performance.now() - started
    const route = routeOf(request.url)
    const xCache = response.headers["x-cache"]
    const cacheFailed = fiber.getFiberRef(cacheFailedRef)
    record(route, request.method, response.status, elapsedMillis, request.url, xCache, cacheFailed)
    if (!logRequests) return Effect.void
    return logRequest({
      method: request.method,
      route,
      status: response.status,
      elapsedMillis,
      requestId,
      xCache,
      cacheFailed
    })
  })

/**
 * Per request: a request id (echoed in `X-Request-Id` and on every log line the request writes), the request
 * counter and duration histogram, and with `logRequests` one log line at info. The platform writes the answer before
 * this middleware's app returns, so the header goes on through a pre-response handler, which also sees the answer
 * actually sent.
 *
 * The platform runs each request in a fiber of its own that ends with it, so the handler and the log annotation are
 * set on that fiber rather than scoped with `locally`: the same effect for half the work on every request.
 */
export const observe = <E, R>(app: HttpApp.Default<E, R>, logRequests: boolean): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const started = performance.now()
    const requestId = requestIdOf(request.headers["x-request-id"])
    let sent: HttpServerResponse.HttpServerResponse | undefined
    const stamp = (response: HttpServerResponse.HttpServerResponse) => {
      // The one place every answer passes: its security headers go on here too.
      sent = HttpServerResponse.setHeaders(response, {
        ...SecurityHeaders.forResponse(response),
        "x-request-id": requestId
      })
      return sent
    }
    // Both: a response the router already wrote goes through the pre-response handler, one returned from outside
    // the router (the hot path for well-formed GETs) only through the map.
    return HttpApp.appendPreResponseHandler((_, response) => Effect.succeed(stamp(response))).pipe(
      Effect.zipRight(FiberRef.update(FiberRef.currentLogAnnotations, HashMap.set("request_id", requestId as unknown))),
      Effect.zipRight(app),
      Effect.map(stamp),
      Effect.onExit((exit: Exit.Exit<HttpServerResponse.HttpServerResponse, E>) =>
        // Nothing sent means the client went away first: the platform's 499.
        finish(request, requestId, started, sent ?? HttpServerError.exitResponse(exit), logRequests)
      )
    )
  })
