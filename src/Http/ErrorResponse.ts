import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { unexpectedError } from "../Api.js"

// The contract's error body, `{"error": code, "message": text}`, for the answers written outside the HttpApi's own
// error encoding: the contract middleware's, the dashboard's, the last resort's.

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

/** Whatever escaped everything else: logged in full, answered as a bare 500 that reveals nothing. */
export const internalError = HttpServerResponse.unsafeJson(unexpectedError, { status: 500 })
