import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Either, Exit, FiberRef, Option, Runtime } from "effect"
import type { Schema } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { Readable } from "node:stream"
import { databaseUnavailable, InternalError, NotFound, productNotFound, Unavailable, unexpectedError } from "../Api.js"
import type { CreateProduct, ProductId, ProductNotFound, UpdateProduct } from "../Domain/Product.js"
import { ProductService } from "../ProductService.js"
import type { CatalogAnswer, CatalogRead } from "../ProductService.js"
import { maxBodyBytes, maxJsonDepth, nestsDeeperThan } from "./RequestBody.js"
import * as Exchanges from "./Exchange.js"
import type { Answer, Exchange } from "./Exchange.js"
import { settleEndOnClose } from "./NodeResponse.js"
import * as ReadAnswers from "./ReadAnswers.js"
import * as ReadBatch from "./ReadBatch.js"
import * as RouteTable from "./RouteTable.js"
import type { Match as Params, Operation } from "./RouteTable.js"
import * as WriteAnswers from "./WriteAnswers.js"

/** Answers a Node request itself and returns `true`, or returns `false` and leaves it to the HttpApi app. */
export type NodeHandler = (request: IncomingMessage, response: ServerResponse) => boolean

export interface FastPathOptions {
  readonly logRequests: boolean
  /** Counts a request out when its connection closes (the active-requests gauge). */
  readonly onEnd: () => void
  /** The HttpApi app's Node handler: a body this path does not answer is replayed to it. */
  readonly platform: (request: IncomingMessage, response: ServerResponse) => void
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })

// A subset of what the contract takes for JSON: any other spelling of the content type goes to the HttpApi app.
const plainJson = /^application\/json(?:;\s*charset=utf-8)?$/i

/** The error answers, with the statuses their schemas in Api.ts declare. */
const errorAnswer = <A>(schema: Schema.Schema<A, any>, error: A): Answer => ({
  status: HttpApiSchema.getStatusError(schema),
  body: JSON.stringify(error)
})
const unavailable = errorAnswer(Unavailable, databaseUnavailable)
const internalError = errorAnswer(InternalError, unexpectedError)

/** The request again, its body read already: for the HttpApi app, which reads it from the start. */
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

/** The JSON body's value if the text is one, not nested too deep; otherwise nothing (the HttpApi app says why). */
const parsed = (text: string): Option.Option<unknown> => {
  if (nestsDeeperThan(text, maxJsonDepth)) return Option.none()
  try {
    return Option.some(JSON.parse(text))
  } catch {
    return Option.none()
  }
}

/** Whether a request's body may be read here: a declared length within the limit, plain JSON (RequireJson's subset). */
const readableBody = (request: IncomingMessage) => {
  const { headers } = request
  const length = headers["content-length"]
  return (
    length !== undefined &&
    Number(length) <= maxBodyBytes &&
    headers["transfer-encoding"] === undefined &&
    plainJson.test(headers["content-type"] ?? "")
  )
}

const hasBody = (request: IncomingMessage) =>
  request.headers["transfer-encoding"] !== undefined || Number(request.headers["content-length"] ?? 0) > 0

/**
 * The one fast request path: every operation of the route table (RouteTable.ts, read off the HttpApi) whose request
 * is spelled canonically is dispatched at Node's `request` event and served by ProductService on the application's
 * runtime, writing the Node response itself with the same bytes as the HttpApi handlers. It skips the platform's
 * per-request machinery (request wrapping, the handled-app pipeline, response conversion), most of what a request
 * cost beyond the service's own work, and keeps what that machinery gave (Exchange.ts).
 *
 * Whatever it does not take goes to the HttpApi app as it came: other spellings, a body the schema refuses (replayed),
 * any other method or path. Tracing on changes which spans are recorded, not which code answers: every request then
 * runs alone here (reads without the batch), under a server span of its own.
 */
export const make = (options: FastPathOptions) =>
  Effect.gen(function* () {
    const products = yield* ProductService
    const tracing = yield* FiberRef.get(FiberRef.currentTracerEnabled)
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runCallback(runtime)
    const exchanges = Exchanges.make(runtime, options.logRequests)
    const { platform, onEnd } = options

    /** Runs one request's answer as its own fiber, interrupted if its client hangs up. */
    const runAlone = (exchange: Exchange, answer: Effect.Effect<Answer & { readonly failure?: unknown }>) => {
      const effect = tracing ? Exchanges.serverSpan(exchange, answer) : answer
      exchange.cancel = run(effect, {
        onExit: (exit) => {
          if (Exit.isSuccess(exit)) {
            if (exit.value.failure !== undefined)
              exchanges.log(exchange, Effect.logError("database failure", exit.value.failure))
            return exchanges.respond(exchange, exit.value)
          }
          if (exchange.response.destroyed) return exchanges.abandon(exchange)
          exchanges.log(exchange, Effect.logError("request failed unexpectedly", exit.cause))
          exchanges.respond(exchange, internalError)
        }
      })
    }

    // The reads: a product by id and a list page, batched per turn (with tracing on, each alone for its span).
    const enqueue = ReadBatch.make<{ readonly exchange: Exchange; readonly catalog: CatalogRead }>(products, runtime, {
      gone: ({ exchange }) => exchange.response.destroyed,
      answer: ({ catalog, exchange }, given) => {
        if (given === undefined || exchange.response.destroyed) return exchanges.abandon(exchange)
        // A value already known (a hit, or loaded by the batch) comes as a settled Exit: answered with no fiber.
        if (Exit.isExit(given) && Exit.isSuccess(given))
          return exchanges.respond(exchange, ReadAnswers.found(catalog, given.value as CatalogAnswer, exchange.started))
        runAlone(exchange, ReadAnswers.by(catalog, given, exchange.started))
      }
    })
    const read = (exchange: Exchange, catalog: CatalogRead) =>
      tracing
        ? runAlone(exchange, ReadAnswers.by(catalog, products.get(catalog), exchange.started))
        : enqueue({ exchange, catalog })

    /** A write's answer: its success, or the contract's error for what failed (the HttpApi handlers' answers). */
    const written = (
      exchange: Exchange,
      id: ProductId | undefined,
      write: Effect.Effect<Answer, ProductNotFound | SqlError>
    ) =>
      runAlone(
        exchange,
        write.pipe(
          Effect.catchTags({
            ProductNotFound: () => Effect.succeed(errorAnswer(NotFound, productNotFound(id!))),
            SqlError: (error) => Effect.succeed({ ...unavailable, failure: error })
          })
        )
      )

    // The reads as plain objects of CatalogRead's shape, not made by its constructors: a Data struct per request
    // (structural equality nothing here uses) measurably slowed a hit (bench/README.md).
    const operations: Record<Operation, (exchange: Exchange, params: Params, payload: unknown) => void> = {
      "products.get": (exchange, { path }) => read(exchange, { _tag: "Product", id: path.id as ProductId }),
      "products.list": (exchange, { urlParams }) =>
        read(exchange, {
          _tag: "Page",
          offset: urlParams.offset as number,
          limit: ReadAnswers.pageLimit(urlParams.limit as number)
        }),
      "products.create": (exchange, { route }, payload) =>
        written(
          exchange,
          undefined,
          Effect.map(products.create(payload as CreateProduct), (product) => ({
            status: route.successStatus,
            body: WriteAnswers.created(product),
            location: WriteAnswers.locationOf(product)
          }))
        ),
      "products.update": (exchange, { path, route }, payload) =>
        written(
          exchange,
          path.id as ProductId,
          Effect.map(products.update(path.id as ProductId, payload as UpdateProduct), (product) => ({
            status: route.successStatus,
            body: WriteAnswers.updated(product)
          }))
        ),
      "products.remove": (exchange, { path, route }) =>
        written(
          exchange,
          path.id as ProductId,
          Effect.as(products.remove(path.id as ProductId), { status: route.successStatus, body: WriteAnswers.deleted })
        )
    }

    /** The body read, decoded with the endpoint's schema and served, or replayed to the HttpApi app. */
    const withBody = (request: IncomingMessage, exchange: Exchange, params: Params) => {
      const decode = params.route.payload!
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      // A client that hangs up mid-body makes the request emit an error; the exchange's `close` deals with it.
      request.on("error", () => {})
      request.once("end", () => {
        if (exchange.response.destroyed) return
        // Strictly UTF-8, a byte-order mark kept, as the contract's middleware reads it.
        let text: string | undefined
        try {
          text = strictUtf8.decode(Buffer.concat(chunks))
        } catch {
          text = undefined
        }
        const payload =
          text === undefined ? Option.none() : Option.flatMap(parsed(text), (json) => Either.getRight(decode(json)))
        if (Option.isSome(payload)) return operations[params.route.operation](exchange, params, payload.value)
        exchange.handedOver = true
        platform(replayOf(request, chunks), settleEndOnClose(exchange.response))
      })
    }

    const handler: NodeHandler = (request, response) => {
      const params = RouteTable.find(request.method!, request.url!)
      if (params === undefined) return false
      const { route } = params
      const isRead = route.method === "GET"
      if (route.payload !== undefined ? !readableBody(request) : !isRead && hasBody(request)) return false
      const exchange = exchanges.open(request, response, route.template, onEnd, isRead && !tracing)
      if (route.payload !== undefined) withBody(request, exchange, params)
      else operations[route.operation](exchange, params, undefined)
      return true
    }
    return handler
  })
