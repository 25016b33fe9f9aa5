import { Effect, Exit, FiberRef, Runtime } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { defaultLimit, unexpectedError } from "../Api.js"
import type { SqlError } from "@effect/sql/SqlError"
import type { Served } from "../Cache/ReadThrough.js"
import type { ProductId, ProductNotFound } from "../Domain/Product.js"
import * as HttpObservability from "./Observability.js"
import { activeRequests } from "../Metrics.js"
import { ProductService } from "../ProductService.js"
import type { CatalogRead } from "../ProductService.js"
import * as ReadAnswers from "./ReadAnswers.js"

// Only canonical spellings; anything else (leading zeros, too long, other parameters or order, a trailing slash)
// takes the HttpApi route, whose answers these match byte for byte (the same ReadAnswers).
export const canonicalId = /^\/api\/v1\/products\/([1-9][0-9]{0,15})$/
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
 * The lean path: a canonical GET by id or of a list page is dispatched at Node's `request` event and served by
 * ProductService on the application's own runtime (the reads of one event-loop turn together), writing the Node
 * response itself. It skips the platform's per-request machinery (request wrapping, the handled-app pipeline, response
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

    /** The read a canonical URL asks for, or nothing for any other URL (left to the HttpApi route). */
    const readOf = (url: string): CatalogRead | undefined => {
      const byId = canonicalId.exec(url)
      if (byId !== null) {
        const id = Number(byId[1])
        return id <= Number.MAX_SAFE_INTEGER ? { id: id as ProductId } : undefined
      }
      const page = canonicalList.exec(url)
      if (page === null) return undefined
      const offset = page[1] === undefined ? 0 : Number(page[1])
      return { offset, limit: ReadAnswers.pageLimit(Number(page[2] ?? defaultLimit)) }
    }

    /** One request on its way through the lean path. */
    interface Read {
      readonly route: string
      readonly url: string
      readonly response: ServerResponse
      readonly started: number
      readonly requestId: string
      readonly catalog: CatalogRead
      /** Interrupts the request's own fiber, once it has one. */
      cancel?: () => void
    }

    /** A read's answer from its value. */
    const foundAnswer = ({ catalog, started }: Read, served: Served) =>
      catalog.id !== undefined
        ? ReadAnswers.productFound(served, started)
        : ReadAnswers.pageFound(served, catalog.offset, catalog.limit, started)

    /** A read's answer from the effect that answers it. */
    const answerBy = ({ catalog, started }: Read, answer: Effect.Effect<Served, ProductNotFound | SqlError>) =>
      catalog.id !== undefined
        ? ReadAnswers.productBy(answer, started)
        : ReadAnswers.pageBy(answer, catalog.offset, catalog.limit, started)

    const finish = (read: Read, status: number, xCache: string | undefined, cacheFailed = false) => {
      const elapsedMillis = performance.now() - read.started
      HttpObservability.record(read.route, "GET", status, elapsedMillis, read.url, xCache, cacheFailed)
      if (logRequests) {
        const { requestId, route } = read
        runFork(
          HttpObservability.logRequest({
            method: "GET",
            route,
            status,
            elapsedMillis,
            requestId,
            xCache,
            cacheFailed
          }).pipe(Effect.annotateLogs("request_id", requestId))
        )
      }
    }

    const respond = (
      read: Read,
      { age, body, cacheFailed, status, xCache }: Omit<ReadAnswers.ReadAnswer, "status"> & { status: number }
    ) => {
      const { response } = read
      // The client hung up first: nobody to answer (the platform's 499).
      if (response.writableEnded || response.destroyed) return finish(read, 499, undefined)
      // Node's flat-array form, built without an object spread: spreading the extra headers into an object literal
      // cost a hit a large share of its CPU (figures in the README's benchmark section).
      const headers = [
        "content-type",
        "application/json",
        "content-length",
        String(Buffer.byteLength(body)),
        "x-request-id",
        read.requestId
      ]
      for (const pair of extraPairs) headers.push(pair)
      if (xCache !== undefined) headers.push("x-cache", xCache)
      if (age !== undefined) headers.push("age", String(age))
      response.writeHead(status, headers)
      response.end(body)
      finish(read, status, xCache, cacheFailed)
    }

    /** Runs one request's read as its own fiber, interrupted if its client hangs up. */
    const runAlone = (read: Read, answer: Effect.Effect<ReadAnswers.ReadAnswer>) => {
      let effect = answer
      if (tracing) {
        effect = Effect.withSpan(effect, `http.server GET`, {
          kind: "server",
          captureStackTrace: false,
          attributes: { "http.request.method": "GET", "http.route": read.route, "url.path": read.url }
        })
      }
      read.cancel = run(effect, {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) {
            if (exit.value.failure !== undefined) {
              runFork(ReadAnswers.logFailure(exit.value).pipe(Effect.annotateLogs("request_id", read.requestId)))
            }
            return respond(read, exit.value)
          }
          if (read.response.destroyed) return finish(read, 499, undefined)
          runFork(
            Effect.logError("request failed unexpectedly", exit.cause).pipe(
              Effect.annotateLogs("request_id", read.requestId)
            )
          )
          respond(read, { status: 500, body: internalErrorBody })
        }
      })
    }

    // Reads that arrive in one turn of the event loop wait for its check phase and are served together by one fiber
    // (ProductService.getMany): one cache lookup for all, and one database load and one fill for the misses whose
    // leases it takes. Each is answered as soon as its answer is known; what needs more (a remembered absence, a load
    // another reader is doing, a pending invalidation) runs on its own as any lean read does. A fiber per request was
    // most of what a read cost beyond the work the plain Node baseline does too. With tracing on, every read runs
    // alone, for its own span.
    let batch: Array<Read> = []
    const flush = () => {
      const reads = batch.filter((read) => !read.response.destroyed || void finish(read, 499, undefined))
      batch = []
      const answered = new Array<boolean>(reads.length).fill(false)
      const answer = (at: number, given: ReadAnswers.BatchAnswer) => {
        if (answered[at]) return
        answered[at] = true
        const read = reads[at]!
        if (Exit.isExit(given) && Exit.isSuccess(given)) respond(read, foundAnswer(read, given.value as Served))
        else if (read.response.destroyed) finish(read, 499, undefined)
        else runAlone(read, answerBy(read, given))
      }
      run(
        products.getMany(
          reads.map((read) => read.catalog),
          answer
        ),
        {
          // It never fails; should it die, whatever it left unanswered is read alone.
          onExit: (exit) => {
            if (Exit.isFailure(exit)) reads.forEach(({ catalog }, at) => answer(at, products.get(catalog)))
          }
        }
      )
    }

    const handler: LeanHandler = (request, response) => {
      if (request.method !== "GET") return false
      const url = request.url!
      const catalog = readOf(url)
      if (catalog === undefined) return false
      const read: Read = {
        route: catalog.id !== undefined ? byIdRoute : listRoute,
        url,
        response,
        started: performance.now(),
        requestId: HttpObservability.requestIdOf(request.headers["x-request-id"] as string | undefined),
        catalog
      }
      if (tracing) runAlone(read, answerBy(read, products.get(catalog)))
      else {
        if (batch.length === 0) setImmediate(flush)
        batch.push(read)
      }
      response.once("close", () => {
        activeRequests.count--
        if (!response.writableEnded) read.cancel?.()
      })
      return true
    }
    return handler
  })
