import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { Schema } from "effect"

// Errors a client sees: `{"error":"<code>","message":"..."}` exactly, so plain classes with a literal `error` field
// (a TaggedError would add `_tag` to the body). Each code and its status are written here only: code that answers
// an error without the class reads them as `NotFound.code` and `NotFound.status`.
const errorClass = <const Code extends string, const Status extends number>(
  name: string,
  code: Code,
  status: Status,
  description: string
) =>
  Object.assign(
    Schema.Class<{ readonly error: Code; readonly message: string }>(name)(
      { error: Schema.tag(code), message: Schema.String.annotations({ description: "For a person; names the field" }) },
      HttpApiSchema.annotations({ status, description })
    ),
    { code, status } as const
  )

export class InvalidRequest extends errorClass(
  "InvalidRequest",
  "invalid_request",
  400,
  "A path id, query parameter or body the contract refuses; the message names each field"
) {}
export class NotFound extends errorClass("NotFound", "not_found", 404, "No product with this id") {}
export class MethodNotAllowed extends errorClass(
  "MethodNotAllowed",
  "method_not_allowed",
  405,
  "A known path with a method it does not serve"
) {}
export class PayloadTooLarge extends errorClass(
  "PayloadTooLarge",
  "payload_too_large",
  413,
  "The request body is over 1 MiB (1048576 bytes)"
) {}
export class RequestTimeout extends errorClass(
  "RequestTimeout",
  "request_timeout",
  408,
  "The request was not received within REQUEST_TIMEOUT (or its headers within HEADERS_TIMEOUT); answered by the server before any route, on any path"
) {}
export class RequestHeaderFieldsTooLarge extends errorClass(
  "RequestHeaderFieldsTooLarge",
  "request_header_fields_too_large",
  431,
  "The request headers are over 16 KiB; answered by the server before any route, on any path"
) {}
export class ExpectationFailed extends errorClass(
  "ExpectationFailed",
  "expectation_failed",
  417,
  "An `Expect` header other than `100-continue`; answered by the server before any route, on any path"
) {}
export class UnsupportedMediaType extends errorClass(
  "UnsupportedMediaType",
  "unsupported_media_type",
  415,
  "The request body is not application/json"
) {}
export class InternalError extends errorClass(
  "InternalError",
  "internal_error",
  500,
  "An unexpected failure; the body reveals nothing of it"
) {}
export class Unavailable extends errorClass(
  "Unavailable",
  "unavailable",
  503,
  "The database is unavailable; try again later"
) {}

/** Every code the contract's error bodies carry. */
export type ErrorCode =
  | InvalidRequest["error"]
  | NotFound["error"]
  | MethodNotAllowed["error"]
  | PayloadTooLarge["error"]
  | RequestTimeout["error"]
  | RequestHeaderFieldsTooLarge["error"]
  | ExpectationFailed["error"]
  | UnsupportedMediaType["error"]
  | InternalError["error"]
  | Unavailable["error"]

// The words of the errors the handlers answer themselves, in one place: the fast path and the HttpApi routes send
// the same bodies.
export const productNotFound = (id: number) => new NotFound({ message: `product ${id} not found` })
export const databaseUnavailable = new Unavailable({ message: "the database is unavailable, try again later" })
export const unexpectedError = new InternalError({ message: "an unexpected error occurred" })

/** Rejects a POST that the contract says takes no body, when it comes with one. */
export class RequireNoBody extends HttpApiMiddleware.Tag<RequireNoBody>()("RequireNoBody", {
  failure: InvalidRequest
}) {}

/** Rejects a POST/PUT whose body is not `application/json` before the body is read. */
export class RequireJson extends HttpApiMiddleware.Tag<RequireJson>()("RequireJson", {
  failure: UnsupportedMediaType
}) {}
