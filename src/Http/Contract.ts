import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiError from "@effect/platform/HttpApiError"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Cause, Effect, Layer, Option } from "effect"
import { InvalidRequest, RequireJson, RequireNoBody, UnsupportedMediaType } from "../Api.js"
import { describeIssues, errorResponse } from "./ErrorResponse.js"
import { bufferChunked, isChunked, isJson, maxBodyBytes, shallowJson, tooLarge } from "./RequestBody.js"
import { misreadTarget, routeNotFound } from "./Unrouted.js"

// HttpApi answers most failures itself, but not in the contract's shape: decode errors come as its own
// HttpApiDecodeError body, malformed JSON and unknown routes as empty bodies, and it has no notion of 405.
// This middleware wraps the router inside HttpApi's own error encoding, so it sees those failures first.

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
