import { Effect, Runtime } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import * as HttpObservability from "./Observability.js"
import { securityHeaders } from "./SecurityHeaders.js"

// The bookkeeping of one request on the fast path, in one place: its request id, the answer's headers, the metrics
// and the log line (HttpObservability, as the HttpApi app's requests get them), and a client that hangs up (the
// platform's 499, and the request's fiber interrupted).

/** An answer as the fast path writes it: always JSON. */
export interface Answer {
  readonly status: number
  readonly body: string
  readonly xCache?: string | undefined
  readonly age?: number | undefined
  readonly cacheFailed?: boolean | undefined
  readonly location?: string | undefined
}

/** One request on its way through the fast path. */
export interface Exchange {
  readonly method: string
  readonly route: string
  readonly url: string
  readonly response: ServerResponse
  readonly started: number
  readonly givenId: string | undefined
  /** Made when first needed: a request handed to the HttpApi app gets its request id there. */
  requestId?: string
  /** Answered, or recorded as abandoned: nothing more to do for it. */
  settled: boolean
  /** Handed to the HttpApi app, which does its bookkeeping. */
  handedOver: boolean
  /** Interrupts the request's own fiber, once it has one. */
  cancel?: (() => void) | undefined
}

/**
 * `answer` under a server span of the exchange's own, for a request answered here with tracing on. Its attributes are
 * OpenTelemetry's required and recommended ones; the platform's span also copies every request and response header.
 */
export const serverSpan = <A extends Answer, E, R>(exchange: Exchange, answer: Effect.Effect<A, E, R>) =>
  Effect.withSpan(
    Effect.tap(answer, ({ status }) => Effect.annotateCurrentSpan("http.response.status_code", status)),
    `http.server ${exchange.method}`,
    {
      kind: "server",
      captureStackTrace: false,
      attributes: {
        "http.request.method": exchange.method,
        "http.route": exchange.route,
        "url.path": exchange.url,
        "url.scheme": "http"
      }
    }
  )

const securityPairs = Object.entries(securityHeaders).flat()

export const make = (runtime: Runtime.Runtime<never>, logRequests: boolean) => {
  const runFork = Runtime.runFork(runtime)

  const requestIdOf = (exchange: Exchange) => (exchange.requestId ??= HttpObservability.requestIdOf(exchange.givenId))

  /** Runs `log` where the request's id annotates it. */
  const log = (exchange: Exchange, log: Effect.Effect<void>) =>
    void runFork(log.pipe(Effect.annotateLogs("request_id", requestIdOf(exchange))))

  const finish = (exchange: Exchange, status: number, xCache?: string, cacheFailed = false) => {
    if (exchange.settled) return
    exchange.settled = true
    const elapsedMillis = performance.now() - exchange.started
    const { method, route } = exchange
    HttpObservability.record(route, method, status, elapsedMillis, exchange.url, xCache, cacheFailed)
    if (logRequests) {
      const requestId = requestIdOf(exchange)
      log(
        exchange,
        HttpObservability.logRequest({ method, route, status, elapsedMillis, requestId, xCache, cacheFailed })
      )
    }
  }

  /** The client hung up first: nobody to answer (the platform's 499). */
  const abandon = (exchange: Exchange) => finish(exchange, 499)

  const respond = (exchange: Exchange, { age, body, cacheFailed, location, status, xCache }: Answer) => {
    const { response } = exchange
    if (response.writableEnded || response.destroyed) return abandon(exchange)
    // Node's flat-array form, built without an object spread: spreading the extra headers into an object literal
    // cost a hit a large share of its CPU (figures in the README's benchmark section).
    const headers = [
      "content-type",
      "application/json",
      "content-length",
      String(Buffer.byteLength(body)),
      "x-request-id",
      requestIdOf(exchange)
    ]
    for (const pair of securityPairs) headers.push(pair)
    if (xCache !== undefined) headers.push("x-cache", xCache)
    if (age !== undefined) headers.push("age", String(age))
    if (location !== undefined) headers.push("location", location)
    response.writeHead(status, headers)
    response.end(body)
    finish(exchange, status, xCache, cacheFailed === true)
  }

  /**
   * A request taken by the fast path. Its one `close` listener counts it out (`onEnd`) and, if it is still
   * unanswered, interrupts its fiber or records it abandoned; a request in a batch is left to the batch, which finds
   * its response destroyed. A listener per request more was a measurable share of a hit.
   */
  const open = (
    request: IncomingMessage,
    response: ServerResponse,
    route: string,
    onEnd: () => void,
    batched: boolean
  ): Exchange => {
    const exchange: Exchange = {
      method: request.method!,
      route,
      url: request.url!,
      response,
      started: performance.now(),
      givenId: request.headers["x-request-id"] as string | undefined,
      settled: false,
      handedOver: false
    }
    response.once("close", () => {
      onEnd()
      if (exchange.settled || exchange.handedOver || response.writableEnded) return
      if (exchange.cancel !== undefined) exchange.cancel()
      else if (!batched) abandon(exchange)
    })
    return exchange
  }

  return { open, respond, abandon, log, requestIdOf }
}

export type Exchanges = ReturnType<typeof make>
