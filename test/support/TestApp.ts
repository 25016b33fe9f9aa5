import { HttpServer } from "@effect/platform"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Clock, ConfigProvider, Context, Duration, Effect, Layer } from "effect"
import type { Tracer } from "effect"
import type { Cache } from "../../src/Cache.js"
import * as MemoryCache from "../../src/Cache/Memory.js"
import type { CacheStats } from "../../src/Cache/Stats.js"
import * as Dashboard from "../../src/Dashboard.js"
import { HttpLive } from "../../src/Http.js"
import { ProductRepo } from "../../src/ProductRepo.js"
import type { ProductService } from "../../src/ProductService.js"
import * as Server from "../../src/Http/Server.js"
import * as Services from "../../src/Services.js"
import * as Tracing from "../../src/Tracing.js"
import * as Databases from "./Databases.js"
import type { TestDatabase } from "./Databases.js"

/** Removes the products table through a second connection, under the running app: from then on its database fails. */
export const dropProductsTable = (file: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP TABLE products`).pipe(
    Effect.provide(SqliteClient.layer({ filename: file })),
    Effect.orDie
  )

export { tempDir } from "./Databases.js"

export interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
  readonly body: any
}

export interface TestApp {
  readonly url: string
  readonly request: (
    method: string,
    path: string,
    options?: { readonly json?: unknown; readonly body?: string; readonly headers?: Record<string, string> }
  ) => Effect.Effect<Reply>
  readonly get: (path: string) => Effect.Effect<Reply>
}

export class App extends Context.Tag("test/App")<App, TestApp>() {}

const client = (url: string): TestApp => {
  const request: TestApp["request"] = (method, path, options = {}) =>
    Effect.promise(async () => {
      const headers: Record<string, string> = { ...options.headers }
      let body = options.body
      if (options.json !== undefined) {
        body = JSON.stringify(options.json)
        headers["content-type"] ??= "application/json"
      }
      const response = await fetch(url + path, { method, headers, ...(body === undefined ? {} : { body }) })
      const text = await response.text()
      let parsed: unknown = undefined
      try {
        parsed = JSON.parse(text)
      } catch {
        // not JSON: the test asserts on `text`
      }
      return { status: response.status, headers: response.headers, text, body: parsed }
    })
  return { url, request, get: (path) => request("GET", path) }
}

/**
 * The real app (routes, contract middleware, services, database) served on a free port, with the cache layer of the
 * test's choosing. Provides the app's client and the app's own ProductService/CacheStats/Cache instances. The
 * database is a fresh one of this run's kind (test/support/Databases.ts) unless the test gives one.
 */
export const layer = (options: {
  readonly cache: Layer.Layer<Cache, unknown>
  readonly database?: TestDatabase
  readonly env?: Record<string, string>
  /** Wraps the real repository, e.g. to slow its reads down. */
  readonly repo?: (repo: ProductRepo) => ProductRepo
  /** Spans made, and recorded by `tracer` if given; by default tracing is off, as main.ts runs without an endpoint. */
  readonly tracing?: boolean
  readonly tracer?: Tracer.Tracer
}): Layer.Layer<App | CacheStats | ProductService | Cache> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const database = options.database ?? (yield* Databases.make)
      const env = { ...database.env, ...options.env }
      const config = Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const wrap = options.repo
      const Repo =
        wrap === undefined
          ? ProductRepo.Default
          : Layer.effect(ProductRepo, Effect.map(ProductRepo, wrap)).pipe(Layer.provide(ProductRepo.Default))
      // The graph main.ts runs (Services.ts), over the test's cache.
      const Graph = Services.live(Repo).pipe(Layer.provideMerge(options.cache))
      const Served = HttpLive.pipe(Layer.provide(Dashboard.Live), Layer.provideMerge(Server.nodeServer(0)))
      const AppClient = Layer.effect(
        App,
        Effect.map(HttpServer.HttpServer, (server) => {
          const address = server.address
          if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
          return client(`http://127.0.0.1:${address.port}`)
        })
      )
      // Tracing as main.ts sets it up unless asked for, so the HTTP tests run the paths production runs.
      return Layer.mergeAll(AppClient.pipe(Layer.provide(Served)), Graph).pipe(
        Layer.provide(Graph),
        Layer.provide(
          options.tracer !== undefined
            ? Layer.merge(Layer.setTracerEnabled(true), Layer.setTracer(options.tracer))
            : options.tracing === true
              ? Layer.setTracerEnabled(true)
              : Tracing.layer
        ),
        Layer.provide(config)
      )
    })
  ).pipe(Layer.orDie)

/** The app with the cache wrapped as CACHE_BACKEND=memory runs it (spans, failure notes). */
export const observedApp = () => layer({ cache: Services.MemoryLive })

export const memoryApp = (env?: Record<string, string>, database?: TestDatabase) =>
  layer({
    cache: MemoryCache.layer,
    ...(env === undefined ? {} : { env }),
    ...(database === undefined ? {} : { database })
  })

/**
 * The longest a reply may take while Redis does not answer: CACHE_TIMEOUT for each Redis command the request waits
 * on in turn (a read one, before it answers from the database; a write two, its invalidations), and for everything
 * else on a loaded two-core machine (where the test's client shares an event loop with the app) all the time that is
 * left before one wait more: a request that waits once too often cannot pass, and the margin grows with the timeout.
 */
export const replyBoundMillis = (cacheTimeoutMillis: number, commandsWaitedOn: number) =>
  cacheTimeoutMillis * (commandsWaitedOn + 1) - 1

/** Runs a request and measures it: the reply, and how long it took in milliseconds of wall-clock time. */
export const timed = <A, E, R>(request: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.timed(request.pipe(Effect.withClock(liveClock))), ([elapsed, reply]) => ({
    reply,
    millis: Duration.toMillis(elapsed)
  }))

const liveClock = Clock.make()

/** Polls `check` every 50 ms until it holds, for at most `timeoutMillis` of wall-clock time; false if it never did. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMillis = 10_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + timeoutMillis
    for (;;) {
      if (yield* check) return true
      if (Date.now() > deadline) return false
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50)))
    }
  })
