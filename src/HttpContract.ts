import {
  HttpApiBuilder,
  HttpApiError,
  HttpIncomingMessage,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Cause, Effect, Layer, Option } from "effect"
import { Api, RequireJson, UnsupportedMediaType } from "./Api.js"

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

const routes = Object.values(Api.groups).flatMap((group) =>
  Object.values(group.endpoints).map((endpoint) => ({
    method: endpoint.method,
    pattern: new RegExp("^" + endpoint.path.replace(/:[^/]+/g, "[^/]+") + "/?$")
  }))
)

/** Methods served on a path, for the `Allow` header of a 405; empty when the path is unknown. */
export const allowedMethods = (path: string) => [
  ...new Set(routes.filter((route) => route.pattern.test(path)).map((route) => route.method))
]

const routeNotFound = (request: HttpServerRequest.HttpServerRequest) => {
  const path = request.url.split("?")[0] ?? "/"
  const allowed = allowedMethods(path)
  return allowed.length > 0
    ? errorResponse(405, "method_not_allowed", `${request.method} is not allowed on ${path}`, {
        allow: allowed.join(", ")
      })
    : errorResponse(404, "not_found", `no route for ${request.method} ${path}`)
}

const tooLarge = () => errorResponse(413, "payload_too_large", `the request body must be at most ${maxBodyBytes} bytes`)

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

export const ContractLive = HttpApiBuilder.middleware(
  (app) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      // A declared length over the limit is refused before a byte of the body is read.
      if (Number(request.headers["content-length"] ?? 0) > maxBodyBytes) return Effect.succeed(tooLarge())
      return app
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
