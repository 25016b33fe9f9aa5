import { Cause, Effect, Either, Exit, FiberRef, Option, Runtime, Schema } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { Readable } from "node:stream"
import { Api, databaseUnavailable, productNotFound, unexpectedError } from "../Api.js"
import type { ProductId, UpdateProduct } from "../Domain/Product.js"
import { activeRequests } from "../Metrics.js"
import { ProductService } from "../ProductService.js"
import { maxBodyBytes, maxJsonDepth, nestsDeeperThan } from "./Contract.js"
import type { LeanHandler } from "./LeanPath.js"
import { canonicalId } from "./LeanPath.js"
import { settleEndOnClose } from "./NodeResponse.js"
import * as HttpObservability from "./Observability.js"

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

const route = "/api/v1/products/:id"
const update = Api.groups.products.endpoints.update
// The endpoint's own payload schema: what this path accepts is what the HttpApi route accepts.
// (The group's endpoints are typed as a union, so the schema's type is named here.)
const decodePayload = Schema.decodeUnknownEither(
  Option.getOrThrow(update.payloadSchema as Option.Option<Schema.Schema.Any>) as Schema.Schema<UpdateProduct, unknown>
)

// A subset of what the contract takes for JSON: any other spelling of the content type goes to the HttpApi route.
const plainJson = /^application\/json(?:;\s*charset=utf-8)?$/i

/** The body's patch if it is JSON that the schema accepts; otherwise nothing (the HttpApi route will say why). */
const decoded = (text: string): UpdateProduct | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return undefined
  }
  return Either.getOrUndefined(decodePayload(parsed))
}

const updatedPrefix = `{"message":"Product updated successfully, cache invalidated","product":`
const unavailableBody = JSON.stringify(databaseUnavailable)
const internalErrorBody = JSON.stringify(unexpectedError)

export interface LeanWriteOptions {
  readonly logRequests: boolean
  /** Headers every answer carries (security headers). */
  readonly headers: Readonly<Record<string, string>>
  /** The HttpApi app's Node handler: a body this path does not answer is replayed to it. */
  readonly platform: (request: IncomingMessage, response: ServerResponse) => void
}

/** The request again, its body read already: for the HttpApi route, which reads it from the start. */
const replayOf = (request: IncomingMessage, chunks: ReadonlyArray<Buffer>): IncomingMessage =>
  Object.assign(Readable.from(chunks, { objectMode: false }), {
    headers: request.headers,
    rawHeaders: request.rawHeaders,
    method: request.method,
    url: request.url,
    httpVersion: request.httpVersion,
    socket: request.socket,
    connection: request.socket
  }) as unknown as IncomingMessage

/**
 * The lean path for a write: a PUT of a product by its canonical id, with a plain JSON body of a declared length within
 * the limit, is read, decoded with the endpoint's schema and served by ProductService.update on the application's
 * runtime, writing the Node response itself (the same answers, log line, metrics and request id as the HttpApi route).
 * A body the schema refuses, one too deep or not JSON at all, goes to the HttpApi route as it came, so every refusal
 * is the contract's own; so does every other PUT, and every write with tracing on (for its span).
 *
 * The HttpApi route's decoding, middleware and response conversion were most of what a write cost beyond the
 * database and Redis work.
 */
export const make = (options: LeanWriteOptions) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    const tracing = yield* FiberRef.get(FiberRef.currentTracerEnabled)
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runCallback(runtime)
    const runFork = Runtime.runFork(runtime)
    const { logRequests, platform } = options
    const extraPairs = Object.entries(options.headers).flat()

    interface Write {
      readonly url: string
      readonly response: ServerResponse
      readonly started: number
      readonly givenId: string | undefined
      /** Made when first needed: a body replayed to the HttpApi route gets its request id there. */
      requestId?: string
      cancel?: () => void
    }

    const requestIdOf = (write: Write) => (write.requestId ??= HttpObservability.requestIdOf(write.givenId))

    const finish = (write: Write, status: number) => {
      const elapsedMillis = performance.now() - write.started
      HttpObservability.record(route, "PUT", status, elapsedMillis, write.url, undefined)
      if (logRequests) {
        const requestId = requestIdOf(write)
        runFork(
          HttpObservability.logRequest({
            method: "PUT",
            route,
            status,
            elapsedMillis,
            requestId,
            xCache: undefined
          }).pipe(Effect.annotateLogs("request_id", requestId))
        )
      }
    }

    const respond = (write: Write, status: number, body: string) => {
      const { response } = write
      if (response.writableEnded || response.destroyed) return finish(write, 499)
      const headers = [
        "content-type",
        "application/json",
        "content-length",
        String(Buffer.byteLength(body)),
        "x-request-id",
        requestIdOf(write)
      ]
      for (const pair of extraPairs) headers.push(pair)
      response.writeHead(status, headers)
      response.end(body)
      finish(write, status)
    }

    const logged = (write: Write, log: Effect.Effect<void>) =>
      runFork(log.pipe(Effect.annotateLogs("request_id", requestIdOf(write))))

    // The HttpApi route's answers: Products.ts's handler, Server.ts's last resort.
    const updateNow = (write: Write, id: ProductId, patch: UpdateProduct) => {
      write.cancel = run(products.update(id, patch), {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) return respond(write, 200, `${updatedPrefix}${JSON.stringify(exit.value)}}`)
          if (write.response.destroyed) return finish(write, 499)
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure)) {
            if (failure.value._tag === "ProductNotFound")
              return respond(write, 404, JSON.stringify(productNotFound(id)))
            logged(write, Effect.logError("database failure", failure.value))
            return respond(write, 503, unavailableBody)
          }
          logged(write, Effect.logError("request failed unexpectedly", exit.cause))
          respond(write, 500, internalErrorBody)
        }
      })
    }

    /** The body read, decoded and served here, or replayed to the HttpApi route when this path does not answer it. */
    const served = (write: Write, id: ProductId, request: IncomingMessage, chunks: ReadonlyArray<Buffer>) => {
      // Strictly UTF-8, a byte-order mark kept, as the contract's middleware reads it: bytes that are not UTF-8 go to
      // the HttpApi route, whose 400 names the broken fields.
      let text: string
      try {
        text = strictUtf8.decode(Buffer.concat(chunks))
      } catch {
        platform(replayOf(request, chunks), settleEndOnClose(write.response))
        return false
      }
      const patch = nestsDeeperThan(text, maxJsonDepth) ? undefined : decoded(text)
      if (patch !== undefined) {
        updateNow(write, id, patch)
        return true
      }
      platform(replayOf(request, chunks), settleEndOnClose(write.response))
      return false
    }

    const handler: LeanHandler = (request, response) => {
      if (request.method !== "PUT" || tracing) return false
      const url = request.url!
      const byId = canonicalId.exec(url)
      if (byId === null) return false
      const id = Number(byId[1])
      const { headers } = request
      const length = headers["content-length"]
      if (
        id > Number.MAX_SAFE_INTEGER ||
        length === undefined ||
        Number(length) > maxBodyBytes ||
        headers["transfer-encoding"] !== undefined ||
        !plainJson.test(headers["content-type"] ?? "")
      )
        return false
      const write: Write = {
        url,
        response,
        started: performance.now(),
        givenId: headers["x-request-id"] as string | undefined
      }
      // reading: the body is on its way; ours: served here; replayed: the HttpApi route's, which sees its own hang-up.
      let state: "reading" | "ours" | "replayed" = "reading"
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      // A client that hangs up mid-body makes the request emit an error; the `close` below deals with it.
      request.on("error", () => {})
      request.once("end", () => {
        if (response.destroyed) return
        state = served(write, id as ProductId, request, chunks) ? "ours" : "replayed"
      })
      response.once("close", () => {
        activeRequests.count--
        if (response.writableEnded || state === "replayed") return
        if (state === "reading") finish(write, 499)
        else write.cancel?.()
      })
      return true
    }
    return handler
  })
