import { Duration } from "effect"
import { createServer } from "node:http"
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import type { Duplex } from "node:stream"
import { httpClientErrors, httpDroppedConnections, labels, noLabels } from "../Metrics.js"
import { requestIdOf } from "./Observability.js"
import { securityHeaders } from "./SecurityHeaders.js"

// The Node HTTP server under the Effect one, with what only Node can do: bound how long a client may take to send
// its request, cap the connections, and answer the requests Node refuses itself in the contract's JSON.

export interface Limits {
  /** The longest a client may take to send a whole request, headers and body; Node's default is 5 minutes. */
  readonly requestTimeout?: Duration.DurationInput
  /** The longest it may take to send the headers; Node's default is 1 minute. */
  readonly headersTimeout?: Duration.DurationInput
  /** Connections beyond this many open ones are closed as soon as they are accepted; Node sets no cap. */
  readonly maxConnections?: number
}

export interface Options extends Limits {
  /** The address to listen on; all interfaces when absent. */
  readonly host?: string | undefined
}

const millis = (duration: Duration.DurationInput) => Math.ceil(Duration.toMillis(duration))

type Answer = readonly [status: number, reason: string, error: string, message: string]

// Node's own refusals, as its default handler sorts them; anything else it could not parse is a 400.
const answers: Record<string, Answer> = {
  HPE_HEADER_OVERFLOW: [
    431,
    "Request Header Fields Too Large",
    "request_header_fields_too_large",
    "the request headers are too large"
  ],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, "Payload Too Large", "payload_too_large", "the chunk extensions are too large"],
  ERR_HTTP_REQUEST_TIMEOUT: [408, "Request Timeout", "request_timeout", "the request was not received in time"]
}
const malformed: Answer = [400, "Bad Request", "invalid_request", "the request is not valid HTTP/1.1"]
const noHost: Answer = [400, "Bad Request", "invalid_request", "an HTTP/1.1 request must have a Host header"]
const badExpectation: Answer = [
  417,
  "Expectation Failed",
  "expectation_failed",
  "the only expectation this server meets is Expect: 100-continue"
]

const errorSeries = Object.fromEntries(
  [...Object.values(answers), malformed, badExpectation, [0, "", "connection_error", ""] as const].map(
    ([, , error]) => [error, labels({ error })]
  )
)
// Registered up front so a scrape shows every series, at zero, before the first error.
for (const series of Object.values(errorSeries)) httpClientErrors.unsafeValue(series)

/** The headers and body of one of these answers; each has a request id of its own, like every other answer. */
const answerParts = ([, , error, message]: Answer, requestId: string) => {
  const body = JSON.stringify({ error, message })
  const headers = {
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
    ...securityHeaders,
    "x-request-id": requestId,
    connection: "close"
  }
  return { headers, body }
}

const rawResponse = (answer: Answer, requestId: string) => {
  const { body, headers } = answerParts(answer, requestId)
  const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`)
  return `HTTP/1.1 ${answer[0]} ${answer[1]}\r\n${lines.join("")}\r\n${body}`
}

/** Answers a request Node has read but that no route may take, on its response, and closes the connection. */
const answerRead = (answer: Answer, request: IncomingMessage, response: ServerResponse) => {
  httpClientErrors.unsafeUpdate(1, errorSeries[answer[2]]!)
  const { body, headers } = answerParts(answer, requestIdOf(request.headers["x-request-id"] as string | undefined))
  response.shouldKeepAlive = false
  response.writeHead(answer[0], headers).end(body)
}

/**
 * What Node checks at the entrance and answers itself with an empty body (Node's `requireHostHeader`), checked here
 * instead so that the answer is the contract's JSON: an HTTP/1.1 request without `Host` (RFC 9112, 3.2) is a 400.
 * The server's `request` listener calls it first and stops when it returns `true` (the request is answered).
 */
export const refusedAtEntrance = (request: IncomingMessage, response: ServerResponse): boolean => {
  if (request.headers.host !== undefined || request.httpVersion !== "1.1") return false
  answerRead(noHost, request, response)
  return true
}

/**
 * Node's `clientError`: the request could not be read (malformed, headers too large, too slow), so no handler will
 * see it. Answered as Node's default handler would — on the socket, only if no answer has begun on it, then closed
 * — but with the contract's JSON body.
 */
const answerClientError = (error: NodeJS.ErrnoException, socket: Duplex) => {
  const answer = answers[error.code ?? ""] ?? malformed
  const inProgress = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage
  const answerable = socket.writable && (inProgress == null || !inProgress.headersSent)
  httpClientErrors.unsafeUpdate(1, errorSeries[answerable ? answer[2] : "connection_error"]!)
  if (answerable) socket.write(rawResponse(answer, requestIdOf(undefined)))
  socket.destroy()
}

export const make = (limits: Limits = {}): Server => {
  const requestTimeout = limits.requestTimeout === undefined ? undefined : millis(limits.requestTimeout)
  const headersTimeout = limits.headersTimeout === undefined ? undefined : millis(limits.headersTimeout)
  // Node checks both timeouts on this period (30 s by default), so a check every quarter of the shorter one keeps
  // each within 25% of its value.
  const shortest = Math.min(headersTimeout ?? 60_000, requestTimeout ?? 300_000)
  const server = createServer({
    ...(requestTimeout === undefined ? {} : { requestTimeout }),
    ...(headersTimeout === undefined ? {} : { headersTimeout }),
    connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(shortest / 4))),
    // Node would answer these itself with an empty body: `refusedAtEntrance` does it in the contract's JSON.
    requireHostHeader: false
  })
  if (limits.maxConnections !== undefined) server.maxConnections = limits.maxConnections
  server.on("clientError", answerClientError)
  // Without a listener Node answers an unmet `Expect` with an empty 417.
  server.on("checkExpectation", (request: IncomingMessage, response: ServerResponse) =>
    answerRead(badExpectation, request, response)
  )
  server.on("drop", () => httpDroppedConnections.unsafeUpdate(1, noLabels))
  return server
}
