import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Cause, Effect, Layer, Option } from "effect"
import { RequireJson, UnsupportedMediaType, unexpectedError } from "../Api.js"
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

const routeNotFound = (request: HttpServerRequest.HttpServerRequest) => {
  const path = request.url.split("?")[0] ?? "/"
  const allowed = allowedMethods(path)
  if (allowed.length === 0) return errorResponse(404, "not_found", `no route for ${request.method} ${path}`)
  // The path has this method's shape, yet the router did not take it: it could not decode a parameter (`%ZZ`).
  if (allowed.includes(request.method)) {
    return errorResponse(400, "invalid_request", `the path ${path} is not valid percent-encoding`)
  }
  return errorResponse(405, "method_not_allowed", `${request.method} is not allowed on ${path}`, {
    allow: allowed.join(", ")
  })
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

/** The body is read here (the platform keeps it for the payload's decoding) and refused if it nests too deep. */
const shallowJson = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    isJson(request.headers["content-type"])
      ? Effect.flatMap(request.text, (text) => (nestsDeeperThan(text, maxJsonDepth) ? Effect.succeed(tooDeep()) : app))
      : app
  )

export const ContractLive = HttpApiBuilder.middleware(
  (app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
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
              /maxBytes|too large|size/i.test(reason)
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
