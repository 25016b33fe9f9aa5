import { Effect, Exit, FiberRef, Runtime } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { defaultLimit, unexpectedError } from "./Api.js"
import type { ProductId } from "./Domain/Product.js"
import * as HttpObservability from "./HttpObservability.js"
import { activeRequests } from "./Metrics.js"
import { ProductService } from "./ProductService.js"
import * as ReadAnswers from "./ReadAnswers.js"

// Only canonical spellings; anything else (leading zeros, too long, other parameters or order, a trailing slash)
// takes the HttpApi route, whose answers these match byte for byte (the same ReadAnswers).
const canonicalGet = /^\/api\/v1\/products\/([1-9][0-9]{0,15})$/
const canonicalList = /^\/api\/v1\/products(?:\?offset=(0|[1-9][0-9]{0,14})&limit=([1-9][0-9]{0,14}))?$/

const byIdRoute = "/api/v1/products/:id"
const listRoute = "/api/v1/products"

const internalErrorBody = JSON.stringify(unexpectedError)

/** Answers a Node request itself and returns `true`, or returns `false` and leaves it to the HttpApi app. */
export type LeanHandler = (request: IncomingMessage, response: ServerResponse) => boolean

export interface LeanPathOptions {
  readonly logRequests: boolean
  /** Headers every answer carries (security headers). */
  readonly headers: Readonly<Record<string, string>>
}

/**
 * The lean path: a canonical GET by id or of a list page is dispatched at Node's `request` event and runs
 * ProductService's read as one fiber on the application's own runtime, writing the Node response in the fiber's
 * exit callback. It skips the platform's per-request machinery (request wrapping, the handled-app pipeline, response
 * conversion), which cost most of a cache hit's CPU, and keeps what that machinery gave: metrics and the log line
 * (HttpObservability), a request id, spans when tracing is on, and interruption when the client hangs up.
 *
 * HttpApi stays the one description of these routes (validation, OpenAPI, errors): every other spelling goes there.
 */
export const make = (options: LeanPathOptions) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    const tracing = yield* FiberRef.get(FiberRef.currentTracerEnabled)
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runCallback(runtime)
    const runFork = Runtime.runFork(runtime)
    const { logRequests } = options
    const extraPairs = Object.entries(options.headers).flat()

    const readOf = (url: string): [string, Effect.Effect<ReadAnswers.ReadAnswer>] | undefined => {
      const byId = canonicalGet.exec(url)
      if (byId !== null) {
        const id = Number(byId[1])
        return id <= Number.MAX_SAFE_INTEGER ? [byIdRoute, ReadAnswers.product(products, id as ProductId)] : undefined
      }
      const page = canonicalList.exec(url)
      if (page === null) return undefined
      const offset = page[1] === undefined ? 0 : Number(page[1])
      return [listRoute, ReadAnswers.page(products, offset, Number(page[2] ?? defaultLimit))]
    }

    const handler: LeanHandler = (request, response) => {
      if (request.method !== "GET") return false
      const read = readOf(request.url!)
      if (read === undefined) return false
      const [route, answer] = read
      const started = performance.now()
      const requestId = HttpObservability.requestIdOf(request.headers["x-request-id"] as string | undefined)

      let effect = answer
      if (tracing) {
        effect = Effect.withSpan(effect, `http.server GET`, {
          kind: "server",
          captureStackTrace: false,
          attributes: { "http.request.method": "GET", "http.route": route, "url.path": request.url }
        })
      }

      const finish = (status: number, xCache: string | undefined) => {
        const elapsedMillis = performance.now() - started
        HttpObservability.record(route, "GET", status, elapsedMillis)
        if (logRequests) {
          runFork(
            HttpObservability.logRequest({ method: "GET", route, status, elapsedMillis, requestId, xCache }).pipe(
              Effect.annotateLogs("request_id", requestId)
            )
          )
        }
      }

      const cancel = run(effect, {
        onExit: (exit) => {
          // The client hung up first: nobody to answer (the platform's 499).
          if (response.writableEnded || response.destroyed) return finish(499, undefined)
          let status: number
          let body: string
          let xCache: string | undefined
          let age: number | undefined
          if (Exit.isSuccess(exit)) {
            ;({ age, body, status, xCache } = exit.value)
            if (exit.value.failure !== undefined) {
              runFork(ReadAnswers.logFailure(exit.value).pipe(Effect.annotateLogs("request_id", requestId)))
            }
          } else {
            runFork(
              Effect.logError("request failed unexpectedly", exit.cause).pipe(
                Effect.annotateLogs("request_id", requestId)
              )
            )
            status = 500
            body = internalErrorBody
          }
          // Node's flat-array form, built without an object spread: measured, spreading the extra headers into an
          // object literal cost a hit about a quarter of its CPU (the README's benchmark section).
          const headers = [
            "content-type",
            "application/json",
            "content-length",
            String(Buffer.byteLength(body)),
            "x-request-id",
            requestId
          ]
          for (const pair of extraPairs) headers.push(pair)
          if (xCache !== undefined) headers.push("x-cache", xCache)
          if (age !== undefined) headers.push("age", String(age))
          response.writeHead(status, headers)
          response.end(body)
          finish(status, xCache)
        }
      })
      response.once("close", () => {
        activeRequests.count--
        if (!response.writableEnded) cancel()
      })
      return true
    }
    return handler
  })
