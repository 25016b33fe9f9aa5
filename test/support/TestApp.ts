import { HttpServer } from "@effect/platform"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Cache } from "../../src/Cache.js"
import * as MemoryCache from "../../src/Cache/Memory.js"
import { CacheStats } from "../../src/CacheStats.js"
import { Database } from "../../src/Database.js"
import { RoutesLive } from "../../src/Http.js"
import * as Invalidations from "../../src/Invalidations.js"
import { ProductRepo } from "../../src/ProductRepo.js"
import { ProductService } from "../../src/ProductService.js"
import * as Server from "../../src/Server.js"

/** A folder removed with its scope, for SQLite files. */
export const tempDir = (prefix = "catalog-test-"): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), prefix))),
    (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
  )

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
 * The real app (routes, contract middleware, services, SQLite file) served on a free port, with the cache layer
 * of the test's choosing. Provides the app's client and the app's own ProductService/CacheStats/Cache instances.
 */
export const layer = (options: {
  readonly cache: Layer.Layer<Cache, unknown>
  readonly env?: Record<string, string>
  /** Wraps the real repository, e.g. to slow its reads down. */
  readonly repo?: (repo: ProductRepo) => ProductRepo
}): Layer.Layer<App | CacheStats | ProductService | Cache> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const dir = yield* tempDir()
      const env = { DB_PATH: Path.join(dir, "nested", "products.db"), ...options.env }
      const config = Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
      const wrap = options.repo
      const Repo =
        wrap === undefined
          ? ProductRepo.Default
          : Layer.effect(ProductRepo, Effect.map(ProductRepo, wrap)).pipe(Layer.provide(ProductRepo.Default))
      const Services = ProductService.DefaultWithoutDependencies.pipe(
        Layer.provideMerge(
          Layer.mergeAll(Repo, CacheStats.Default, Database.Default, Invalidations.layerShared, options.cache)
        )
      )
      const Served = Server.serve.pipe(Layer.provide(RoutesLive), Layer.provideMerge(Server.nodeServer(0)))
      const AppClient = Layer.effect(
        App,
        Effect.map(HttpServer.HttpServer, (server) => {
          const address = server.address
          if (address._tag !== "TcpAddress") throw new Error("expected a TCP address")
          return client(`http://127.0.0.1:${address.port}`)
        })
      )
      return Layer.mergeAll(AppClient.pipe(Layer.provide(Served)), Services).pipe(
        Layer.provide(Services),
        Layer.provide(config)
      ) as Layer.Layer<App | CacheStats | ProductService | Cache>
    })
  ).pipe(Layer.orDie)

export const memoryApp = (env?: Record<string, string>) =>
  layer({ cache: MemoryCache.layer, ...(env === undefined ? {} : { env }) })
