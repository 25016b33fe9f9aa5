import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit } from "effect"
import * as AppConfig from "../../src/AppConfig.js"
import { RedisLive } from "../../src/Services.js"
import * as RedisServer from "../support/RedisServer.js"
import * as TestApp from "../support/TestApp.js"
import { App } from "../support/TestApp.js"

// A Redis shared with another service: what a write costs must not depend on keys that are not ours, and anonymous
// clients cycling offset/limit must not grow what we keep. Proved by counting commands in Redis, not by timing.

const unrelatedKeys = 100_000

const withApp = <A, E>(test: (server: RedisServer.RedisServer) => Effect.Effect<A, E, App>, env = {}) =>
  Effect.gen(function* () {
    const server = yield* RedisServer.make()
    return yield* test(server).pipe(
      // These count commands, not time: a command that outlived the default CACHE_TIMEOUT on a busy machine left a
      // page uncached (and failed the test) though nothing was wrong.
      Effect.provide(TestApp.layer({ cache: RedisLive, env: { REDIS_URL: server.url, CACHE_TIMEOUT: "5s", ...env } }))
    )
  })

/** Another service's keys, shaped like ours under its own prefix, written by one script. */
const populate = (server: RedisServer.RedisServer) =>
  server.command(
    "EVAL",
    `for i = 1, tonumber(ARGV[1]) do redis.call("SET", "shop:list:" .. i .. ":20", "x") end`,
    "0",
    String(unrelatedKeys)
  )

/** Calls per command since the server started, from `INFO commandstats`. */
const commandCalls = (server: RedisServer.RedisServer) =>
  Effect.map(server.command("INFO", "commandstats"), (info) => {
    const calls: Record<string, number> = {}
    for (const [, name, count] of String(info).matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) calls[name!] = Number(count)
    return calls
  })

// `server.command` opens a connection per call: its handshake (INFO, CLIENT SETINFO) and QUIT are the harness's.
const harness = (command: string) => command === "info" || command === "quit" || command.startsWith("client|")

const callsDuring = <A, E, R>(server: RedisServer.RedisServer, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = yield* commandCalls(server)
    yield* effect
    const after = yield* commandCalls(server)
    const diff: Record<string, number> = {}
    for (const [name, count] of Object.entries(after)) {
      const during = count - (before[name] ?? 0)
      if (during > 0 && !harness(name)) diff[name] = during
    }
    return diff
  })

type Product = { id: number; price: number }

const create = (price: number) =>
  Effect.flatMap(App, (app) =>
    Effect.map(app.request("POST", "/api/v1/products", { json: { name: "P", price } }), (reply) => {
      expect(reply.status).toBe(201)
      return reply.body.product as Product
    })
  )

const update = (id: number, price: number) =>
  Effect.flatMap(App, (app) =>
    Effect.map(app.request("PUT", `/api/v1/products/${id}`, { json: { price } }), (reply) => {
      expect(reply.status).toBe(200)
      return reply.body.product as Product
    })
  )

/** Reads the page and checks it against the products as the database holds them. */
const readPage = (products: ReadonlyArray<Product>, offset: number, limit: number) =>
  Effect.flatMap(App, (app) =>
    Effect.map(app.get(`/api/v1/products?offset=${offset}&limit=${limit}`), (reply) => {
      expect(reply.body.products).toEqual(products.slice(offset, offset + limit))
      expect(reply.body.total).toBe(products.length)
      return reply.body.from_cache as boolean
    })
  )

// These count commands, not time: the bound only stops a run that hangs. A few hundred requests and a 100,000-key
// script take seconds on two cores that other work keeps busy.
const testBoundMillis = 120_000

const pages = Array.from({ length: 30 }, (_, i) => ({ offset: i % 3, limit: 1 + Math.floor(i / 3) }))
const pageKeys = pages.map(({ limit, offset }) => `product:list:${offset}:${limit}`)

describe("a Redis crowded with another service's keys", () => {
  it.scopedLive(
    `a write removes every cached page in the same commands with or without ${unrelatedKeys} unrelated keys`,
    () =>
      withApp((server) =>
        Effect.gen(function* () {
          const products = [yield* create(10), yield* create(20), yield* create(30)]
          const readAll = Effect.forEach(pages, ({ limit, offset }) => readPage(products, offset, limit))

          /** Caches every page, updates product 1, and returns the Redis commands the update caused. */
          const cacheThenWrite = (price: number) =>
            Effect.gen(function* () {
              yield* readAll
              expect(yield* readAll).toEqual(pages.map(() => true))
              const calls = yield* callsDuring(
                server,
                Effect.map(update(products[0]!.id, price), (updated) => (products[0] = updated))
              )
              expect(yield* server.command("EXISTS", ...pageKeys)).toBe(0)
              // Fresh: every page is read again from the database and shows the write.
              expect(yield* readAll).toEqual(pages.map(() => false))
              return calls
            })

          yield* cacheThenWrite(11) // loads the scripts into Redis, so both measured writes run the same way
          const alone = yield* cacheThenWrite(12)
          yield* populate(server)
          const crowded = yield* cacheThenWrite(13)

          expect(crowded).toEqual(alone)
          // One script (Cache.invalidateMany) doing the product's removal (its guard, its value, absence and shadow)
          // and the pages' (the list guard, the index read once, one DEL per page it names and one per page's shadow,
          // the index itself). No SCAN, no KEYS: nothing visits other keys.
          expect(crowded).toEqual({ evalsha: 1, set: 2, zrange: 1, del: 3 + 2 * pages.length + 1 })
          expect(yield* server.command("EXISTS", "shop:list:1:20", `shop:list:${unrelatedKeys}:20`)).toBe(2)
          expect(Number(yield* server.command("DBSIZE"))).toBeGreaterThan(unrelatedKeys)
        })
      ),
    testBoundMillis
  )

  it.scopedLive(
    "CACHE_MAX_PAGES bounds the pages kept; every read stays correct and a write removes them all",
    () =>
      withApp(
        (server) =>
          Effect.gen(function* () {
            const products = [yield* create(10), yield* create(20), yield* create(30)]
            for (const { limit, offset } of pages) expect(yield* readPage(products, offset, limit)).toBe(false)

            const indexed = (yield* server.command("ZRANGE", "product:index:list", "0", "-1")) as Array<string>
            expect(indexed.length).toBe(10)
            // Evicted pages went with their values: Redis holds exactly the pages the index names.
            expect([...((yield* server.command("KEYS", "product:list:*")) as Array<string>)].sort()).toEqual(
              [...indexed].sort()
            )
            for (const key of indexed) {
              const [offset, limit] = key.split(":").slice(2).map(Number)
              expect(yield* readPage(products, offset!, limit!)).toBe(true)
            }

            products[0] = yield* update(products[0]!.id, 15)
            expect(yield* server.command("EXISTS", "product:index:list", ...indexed)).toBe(0)
            for (const key of indexed) {
              const [offset, limit] = key.split(":").slice(2).map(Number)
              expect(yield* readPage(products, offset!, limit!)).toBe(false)
            }
          }),
        { CACHE_MAX_PAGES: "10" }
      ),
    testBoundMillis
  )
})

describe("CACHE_MAX_PAGES", () => {
  it.effect("is 1,000 unless set, at most 10,000, checked at start, and named when wrong", () =>
    Effect.gen(function* () {
      const read = <A>(config: Effect.Effect<A, unknown>, env: Record<string, string>) =>
        Effect.exit(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(env)))))
      expect(yield* read(AppConfig.cacheMaxPages, {})).toEqual(Exit.succeed(1_000))
      expect(yield* read(AppConfig.cacheMaxPages, { CACHE_MAX_PAGES: "10000" })).toEqual(Exit.succeed(10_000))
      for (const bad of ["0", "10001", "many"]) {
        const exit = yield* read(AppConfig.all, { CACHE_MAX_PAGES: bad })
        expect(Exit.isFailure(exit) && String(exit.cause)).toMatch(/CACHE_MAX_PAGES/)
      }
    })
  )
})
