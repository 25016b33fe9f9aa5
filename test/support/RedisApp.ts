import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { RedisLive } from "../../src/Services.js"
import type { ProductService } from "../../src/ProductService.js"
import * as RedisServer from "./RedisServer.js"
import * as TestApp from "./TestApp.js"
import { App } from "./TestApp.js"

// The real app on a real Redis (our own redis-server, never the machine's) and a real SQLite file, for the suites of
// test/integration/Redis*.test.ts.

/** The app on a fresh redis-server of its own. */
export const withApp = <A, E>(
  test: (server: RedisServer.RedisServer) => Effect.Effect<A, E, App | ProductService>,
  env: Record<string, string> = {}
) =>
  Effect.gen(function* () {
    const server = yield* RedisServer.make()
    return yield* test(server).pipe(
      Effect.provide(TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url, ...env } }))
    )
  })

/** Creates a product, asserting the 201. */
export const create = (name: string, price = 10) =>
  Effect.flatMap(App, (app) =>
    Effect.map(app.request("POST", "/api/v1/products", { json: { name, price } }), (reply) => {
      expect(reply.status).toBe(201)
      return reply.body.product as { id: number; name: string; price: number }
    })
  )
