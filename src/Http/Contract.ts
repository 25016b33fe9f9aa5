import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Cause, Effect, Either, Layer, Option, ParseResult, Schema } from "effect"
import { InvalidRequest, RequireJson, RequireNoBody, UnsupportedMediaType, unexpectedError } from "../Api.js"
import { endpoints } from "./Endpoints.js"

// HttpApi answers most failures itself, but not in the contract's shape: decode errors come as its own
// HttpApiDecodeError body, malformed JSON and unknown routes as empty bodies, and it has no notion of 405.
// This middleware wraps the router inside HttpApi's own error encoding, so it sees those failures first.

export const maxBodyBytes = 1024 * 1024

export const errorResponse = (status: number, error: string, message: string, headers?: Record<string, string>) =>
  HttpServerResponse.unsafeJson({ error, message }, headers === undefined ? { status } : { status, headers })

interface Issue {
  readonly _tag: string
  readonly path: ReadonlyArray<PropertyKey>
  readonly message: string
}

const describeIssue = ({ _tag, message, path }: Issue) => {
  const field = path.map(String).join(".")
  if (_tag === "Unexpected") return `unknown field "${field}"`
  if (_tag === "Missing") return `${field} is required`
  if (field === "") return _tag === "Type" ? "the request body must be a JSON object" : message
  return message.startsWith(field) ? message : `${field}: ${message}`
}

/** One line naming each field that failed, first failure per field. */
export const describeIssues = (issues: ReadonlyArray<Issue>) => {
  const seen = new Set<string>()
  const lines: Array<string> = []
  for (const issue of issues) {
    const field = issue.path.map(String).join(".")
    if (seen.has(field)) continue
    seen.add(field)
    lines.push(describeIssue(issue))
  }
  return lines.join("; ")
}

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

const routeNotFound = (request: HttpServerRequest.HttpServerRequest) =>
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

/** A contract body is one flat object; this leaves room for any JSON a client means, far below what breaks decoding. */
export const maxJsonDepth = 64

/**
 * Whether JSON `text` nests objects and arrays deeper than `limit`. Decoding a deeply nested field does not fail
 * cleanly: the error message that describes the value recurses through it and overflows the stack (a 500). So the
 * text is scanned first, one pass without allocating; brackets inside strings do not count.
 */
export const nestsDeeperThan = (text: string, limit: number) => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === 0x5c)
        i++ // a backslash escapes the next character, a quote included
      else if (code === 0x22) inString = false
    } else if (code === 0x22) inString = true
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > limit) return true
    } else if (code === 0x7d || code === 0x5d) depth--
  }
  return false
}

const tooDeep = () =>
  errorResponse(400, "invalid_request", `the request body must not nest deeper than ${maxJsonDepth} levels`)

const tooLarge = () => errorResponse(413, "payload_too_large", `the request body must be at most ${maxBodyBytes} bytes`)

// A body that overruns the limit is still read to its end (discarded) up to this much, so the client that is still
// sending gets its 413 instead of a connection reset; past this the connection is cut.
const drainLimitBytes = 16 * maxBodyBytes

/**
 * A chunked body has no length to check up front, and the platform's reader destroys the socket when a body
 * overruns its limit. So such a body is read here, counting, and the request is handed on with the bytes in memory.
 */
const bufferChunked = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<Option.Option<HttpServerRequest.HttpServerRequest>>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    let settled = false
    const settle = (result: Option.Option<HttpServerRequest.HttpServerRequest>) => {
      if (settled) return
      settled = true
      resume(Effect.succeed(result))
    }
    incoming.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size <= maxBodyBytes) chunks.push(chunk)
      else if (size > drainLimitBytes) incoming.destroy()
    })
    incoming.once("close", () => settle(Option.none()))
    incoming.once("end", () => {
      if (size > maxBodyBytes) return settle(Option.none())
      const headers = new Headers()
      for (const [name, value] of Object.entries(request.headers)) {
        if (name !== "transfer-encoding") headers.set(name, value)
      }
      const body = Buffer.concat(chunks)
      const web = new Request(`http://localhost${request.url}`, { method: request.method, headers, body })
      settle(Option.some(HttpServerRequest.fromWeb(web)))
    })
  })

const isChunked = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["content-length"] === undefined && request.headers["transfer-encoding"] !== undefined

const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim())

export const RequireJsonLive = Layer.succeed(
  RequireJson,
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    isJson(request.headers["content-type"])
      ? Effect.void
      : Effect.fail(new UnsupportedMediaType({ message: "the request body must be application/json" }))
  )
)

export const RequireNoBodyLive = Layer.succeed(
  RequireNoBody,
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.flatMap(
      Effect.orElseSucceed(request.text, () => "unreadable"),
      (text) =>
        text === ""
          ? Effect.void
          : Effect.fail(new InvalidRequest({ message: `${request.method} ${request.url} takes no request body` }))
    )
  )
)

// The platform decodes a body leniently: bytes that are not UTF-8 (a lone surrogate written as UTF-8, ED A0 80) become
// U+FFFD, which would be stored as if the client had sent it. So the bytes are read and decoded strictly here. The
// BOM is kept, so that a body starting with one stays invalid JSON, as before.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** The 400 for a body that is not UTF-8, naming the top-level text fields where it is broken when it can. */
const notUtf8 = (bytes: ArrayBuffer) => {
  let fields: Array<string> = []
  try {
    const body: unknown = JSON.parse(lenientUtf8.decode(bytes))
    if (typeof body === "object" && body !== null) {
      fields = Object.entries(body).flatMap(([field, value]) =>
        typeof value === "string" && value.includes("\ufffd") ? [field] : []
      )
    }
  } catch {
    // Not JSON either: the body as a whole is named.
  }
  const what = "is not valid UTF-8 (a broken byte sequence, or a surrogate encoded on its own)"
  return errorResponse(
    400,
    "invalid_request",
    fields.length === 0 ? `the request body ${what}` : fields.map((field) => `${field} ${what}`).join("; ")
  )
}

/** The request with its body already read: `text`, and `json` that reads it, answer from `text`. */
const withText = (request: HttpServerRequest.HttpServerRequest, text: string): HttpServerRequest.HttpServerRequest =>
  Object.create(request, { text: { value: Effect.succeed(text) } })

/** The body is read here, strictly as UTF-8 (the payload's decoding takes it from here), and refused if it nests too deep. */
const shallowJson = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    if (!isJson(request.headers["content-type"])) return app
    return Effect.flatMap(request.arrayBuffer, (bytes) => {
      let text: string
      try {
        text = strictUtf8.decode(bytes)
      } catch {
        return Effect.succeed(notUtf8(bytes))
      }
      if (nestsDeeperThan(text, maxJsonDepth)) return Effect.succeed(tooDeep())
      return Effect.provideService(app, HttpServerRequest.HttpServerRequest, withText(request, text))
    })
  })

export const ContractLive = HttpApiBuilder.middleware(
  (app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const misread = misreadTarget(request.method, request.url)
      if (misread !== undefined) return Effect.succeed(misread)
      // A declared length over the limit is refused before a byte of the body is read.
      if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) return Effect.succeed(tooLarge())
      if (!isChunked(request)) return shallowJson(app)
      return Effect.flatMap(
        bufferChunked(request),
        Option.match({
          onNone: () => Effect.succeed(tooLarge()),
          onSome: (buffered) => Effect.provideService(shallowJson(app), HttpServerRequest.HttpServerRequest, buffered)
        })
      )
    }).pipe(
      HttpIncomingMessage.withMaxBodySize(Option.some(maxBodyBytes)),
      Effect.catchAllCause((cause) => {
        const failure = Cause.squash(cause)
        if (failure instanceof HttpApiError.HttpApiDecodeError) {
          return Effect.succeed(errorResponse(400, "invalid_request", describeIssues(failure.issues)))
        }
        if (typeof failure === "object" && failure !== null && "_tag" in failure) {
          if (failure._tag === "RouteNotFound") {
            return Effect.map(HttpServerRequest.HttpServerRequest, routeNotFound)
          }
          if (failure._tag === "RequestError") {
            const reason = String((failure as { cause?: unknown }).cause ?? "")
            return Effect.succeed(
              // The platform's own words when a body passes its limit; a parse error quotes the body, so nothing looser.
              /maxBytes exceeded/.test(reason)
                ? tooLarge()
                : errorResponse(400, "invalid_request", "the request body is not valid JSON")
            )
          }
        }
        return Effect.failCause(cause)
      })
    ) as Effect.Effect<HttpServerResponse.HttpServerResponse>
)

/** Whatever escaped everything else: logged in full, answered as a bare 500 that reveals nothing. */
export const internalError = HttpServerResponse.unsafeJson(unexpectedError, { status: 500 })
