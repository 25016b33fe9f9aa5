import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import { Either, Option, Schema } from "effect"
import { Api, RequireJson } from "../Api.js"

// The fast path's routes, read off the HttpApi: methods, templates, the path, URL-parameter and payload schemas and
// the success status all come from Api.ts, so a route there is served here by the same description or not at all.

/** The operations the fast path serves, by `group.endpoint`. */
export const fastOperations = [
  "products.get",
  "products.list",
  "products.create",
  "products.update",
  "products.remove"
] as const
export type Operation = (typeof fastOperations)[number]

/** The endpoints left to the HttpApi app, and why; with `fastOperations`, every endpoint of the Api (a test checks). */
export const leftToPlatform: Readonly<Record<string, string>> = {
  "cache.stats": "answered from counters by its HttpApi handler; not on the hot path",
  "cache.reset": "its RequireNoBody middleware reads the body; not on the hot path",
  "health.health": "its handler probes the database and the cache; not on the hot path",
  "metrics.metrics": "a text body rendered by its HttpApi handler; not on the hot path",
  "dashboard.events": "a Server-Sent Events stream"
}

/**
 * Middlewares the fast path does itself: RequireJson, as a subset of what it accepts (other spellings of the content
 * type go to the HttpApi app, whose RequireJson then judges them). An endpoint with any other is not served here.
 */
const honoured: ReadonlySet<unknown> = new Set([RequireJson])

type Decoded = Readonly<Record<string, unknown>>

// Decoding and encoding back cost microseconds per request; the texts a client sends repeat (ids, pages), so each
// text's verdict is kept, in a bounded map emptied when full.
const memoLimit = 4096

/**
 * A decoder that takes only canonical texts: those the schema decodes and encodes back to the very same text. Any
 * other spelling (`01`, `%31`, a reordered or repeated parameter) is left to the HttpApi app, whose answer for it is
 * the contract's, refusal or not.
 */
const canonical = (
  schema: Schema.Schema<any, any>,
  parse: (text: string) => Readonly<Record<string, string>> | undefined,
  print: (encoded: Readonly<Record<string, string>>, given: Readonly<Record<string, string>>) => string
) => {
  const decode = Schema.decodeUnknownEither(schema)
  const encode = Schema.encodeEither(schema)
  const memo = new Map<string, Decoded | null>()
  const judge = (text: string): Decoded | null => {
    const given = parse(text)
    if (given === undefined) return null
    const decoded = decode(given)
    if (Either.isLeft(decoded)) return null
    const encoded = encode(decoded.right)
    return Either.isRight(encoded) && print(encoded.right, given) === text ? decoded.right : null
  }
  return (text: string): Decoded | undefined => {
    let verdict = memo.get(text)
    if (verdict === undefined) {
      if (memo.size >= memoLimit) memo.clear()
      verdict = judge(text)
      memo.set(text, verdict)
    }
    return verdict ?? undefined
  }
}

const plainParam = /^[A-Za-z0-9_.~-]*$/

/** `a=1&b=2` as a record (none given: the empty text); nothing for a text with escapes, a bare name or a repeated name. */
const parseQuery = (text: string): Record<string, string> | undefined => {
  const given: Record<string, string> = {}
  if (text === "") return given
  for (const pair of text.split("&")) {
    const at = pair.indexOf("=")
    if (at <= 0) return undefined
    const name = pair.slice(0, at)
    const value = pair.slice(at + 1)
    if (!plainParam.test(name) || !plainParam.test(value) || Object.hasOwn(given, name)) return undefined
    given[name] = value
  }
  return given
}

/** The query of the given parameters, in the schema's order: the one canonical spelling of them. */
const printQuery = (encoded: Readonly<Record<string, string>>, given: Readonly<Record<string, string>>) =>
  Object.keys(encoded)
    .filter((name) => Object.hasOwn(given, name))
    .map((name) => `${name}=${encoded[name]}`)
    .join("&")

/** A request a route takes, with its decoded path and URL parameters. */
export interface Match {
  readonly route: Route
  readonly path: Decoded
  readonly urlParams: Decoded
}

export interface Route {
  readonly operation: Operation
  readonly method: string
  /** The template, as the metrics and the log name the route. */
  readonly template: string
  /** The status of the endpoint's success schema. */
  readonly successStatus: number
  /** The decoded path and URL parameters of `url`, or nothing when this route does not take it as spelled. */
  readonly match: (path: string, query: string | undefined) => Match | undefined
  /** The endpoint's payload decoder; nothing for an endpoint without a body. */
  readonly payload: ((body: unknown) => Either.Either<unknown, unknown>) | undefined
}

const none: Decoded = {}

const routeOf = (operation: Operation, endpoint: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps): Route | undefined => {
  for (const middleware of endpoint.middlewares) if (!honoured.has(middleware)) return undefined
  const parts = endpoint.path.split("/")
  const names = parts.flatMap((part) => (part.startsWith(":") ? [part.slice(1)] : []))
  const pathParams = Option.match(endpoint.pathSchema, {
    onNone: () => undefined,
    onSome: (schema) =>
      canonical(
        schema as Schema.Schema<any, any>,
        (text) => {
          const values = text.split("/")
          return values.length === names.length
            ? Object.fromEntries(names.map((name, at) => [name, values[at]!]))
            : undefined
        },
        (encoded) => names.map((name) => encoded[name]).join("/")
      )
  })
  const urlParams = Option.match(endpoint.urlParamsSchema, {
    onNone: () => undefined,
    onSome: (schema) => canonical(schema as Schema.Schema<any, any>, parseQuery, printQuery)
  })
  // The path up to its parameters (one, at the end, in this Api); a template with a parameter elsewhere is matched
  // part by part.
  const paramAt = parts.findIndex((part) => part.startsWith(":"))
  const prefix = paramAt === -1 ? endpoint.path : parts.slice(0, paramAt).join("/") + "/"
  const literalTail = parts.slice(paramAt)
  const paramsOf = (path: string): Decoded | undefined => {
    if (paramAt === -1) return path === prefix ? none : undefined
    if (!path.startsWith(prefix) || pathParams === undefined) return undefined
    const rest = path.slice(prefix.length).split("/")
    const values: Array<string> = []
    for (let at = 0; at < literalTail.length; at++) {
      if (rest[at] === undefined) return undefined
      if (literalTail[at]!.startsWith(":")) values.push(rest[at]!)
      else if (rest[at] !== literalTail[at]) return undefined
    }
    return rest.length === literalTail.length ? pathParams(values.join("/")) : undefined
  }
  const route: Route = {
    operation,
    method: endpoint.method,
    template: endpoint.path,
    successStatus: HttpApiSchema.getStatusSuccess(endpoint.successSchema),
    match: (path, query) => {
      const decodedPath = paramsOf(path)
      if (decodedPath === undefined) return undefined
      if (urlParams === undefined)
        return query === undefined ? { route, path: decodedPath, urlParams: none } : undefined
      // No query is the defaults; a `?` with nothing after it is another spelling of them.
      const decodedQuery = query === "" ? undefined : urlParams(query ?? "")
      return decodedQuery === undefined ? undefined : { route, path: decodedPath, urlParams: decodedQuery }
    },
    payload: Option.match(endpoint.payloadSchema, {
      onNone: () => undefined,
      onSome: (schema) => Schema.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>)
    })
  }
  return route
}

/** Every endpoint of the Api with its `group.endpoint` name. */
export const endpoints = Object.values(Api.groups).flatMap((group) =>
  Object.values(group.endpoints).map((endpoint: HttpApiEndpoint.HttpApiEndpoint.AnyWithProps) => ({
    name: `${group.identifier}.${endpoint.name}`,
    endpoint
  }))
)

/** The routes the fast path serves, by method. */
export const routes: ReadonlyMap<string, ReadonlyArray<Route>> = (() => {
  const byMethod = new Map<string, Array<Route>>()
  for (const { endpoint, name } of endpoints) {
    if (!(fastOperations as ReadonlyArray<string>).includes(name)) continue
    const route = routeOf(name as Operation, endpoint)
    if (route === undefined) continue
    byMethod.set(route.method, [...(byMethod.get(route.method) ?? []), route])
  }
  return byMethod
})()

/** The route that takes `method` `url` as spelled, with its decoded parameters; nothing leaves it to the HttpApi app. */
export const find = (method: string, url: string): Match | undefined => {
  const candidates = routes.get(method)
  if (candidates === undefined) return undefined
  const at = url.indexOf("?")
  const path = at === -1 ? url : url.slice(0, at)
  const query = at === -1 ? undefined : url.slice(at + 1)
  for (const route of candidates) {
    const matched = route.match(path, query)
    if (matched !== undefined) return matched
  }
  return undefined
}
