import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Redacted } from "effect"
import { availableParallelism } from "node:os"
import * as AppConfig from "../src/AppConfig.js"
import * as InvalidConfig from "./support/InvalidConfig.js"

// Every variable's bad value stops the configuration, naming that variable and no other. The same rows run as real
// processes in test/integration/Process.test.ts.

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The name of every variable `AppConfig.all` asks for, recorded by a provider that has none of them. */
const variablesRead = Effect.gen(function* () {
  const names = new Set<string>()
  const empty = ConfigProvider.fromMap(new Map()).flattened
  const recording = ConfigProvider.fromFlat(
    ConfigProvider.makeFlat({
      load: (path, primitive, split) => {
        names.add(path.join("."))
        return empty.load(path, primitive, split)
      },
      enumerateChildren: empty.enumerateChildren,
      patch: empty.patch
    })
  )
  yield* Effect.withConfigProvider(AppConfig.all, recording)
  return [...names].sort()
})

describe("AppConfig", () => {
  it.effect("every variable it reads has a bad value in the table (or takes any text)", () =>
    Effect.gen(function* () {
      const read = yield* variablesRead
      expect(read).toContain("CACHE_TTL") // the recording works
      const covered = new Set([...InvalidConfig.rows.map((row) => row.name), ...InvalidConfig.anyValue])
      expect(read.filter((name) => !covered.has(name))).toEqual([])
    })
  )

  it.effect("with none set, every default is valid", () => Effect.asVoid(withEnv({})(AppConfig.all)))

  for (const row of InvalidConfig.rows) {
    const setting = Object.entries(row.env)
      .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
      .join(" ")
    it.effect(`${setting} is refused, naming ${row.name} and nothing else`, () =>
      Effect.gen(function* () {
        const error = String(yield* Effect.flip(withEnv(row.env)(AppConfig.all)))
        // CACHE_BACKEND is read twice (alone, and with WORKERS), so a bad one is named twice.
        const named = [...error.matchAll(/Invalid data at ([^:]*):/g)].map((match) => match[1])
        expect(new Set(named), error).toEqual(new Set([row.name]))
      })
    )
  }
})

describe("WORKERS", () => {
  const workersFrom = (value: string) => Effect.either(withEnv({ WORKERS: value })(AppConfig.workers))

  it.effect("auto is one worker per core the process may use; N is N", () =>
    Effect.gen(function* () {
      expect(yield* workersFrom("auto")).toEqual(Either.right(availableParallelism()))
      expect(yield* workersFrom("3")).toEqual(Either.right(3))
      expect(yield* workersFrom("64")).toEqual(Either.right(64))
    })
  )

  it.effect("anything else is refused, naming the variable", () =>
    Effect.gen(function* () {
      for (const value of ["0", "65", "-1", "two", "1.5", "", "Auto"]) {
        const result = yield* workersFrom(value)
        expect(Either.isLeft(result), value).toBe(true)
        if (Either.isLeft(result)) expect(String(result.left), value).toMatch(/Invalid data at WORKERS:/)
      }
    })
  )
})

describe("DATABASE_URL", () => {
  const databaseFrom = (env: Record<string, string>) => Effect.either(withEnv(env)(AppConfig.database))

  it.effect("unset or empty keeps SQLite at DB_PATH", () =>
    Effect.gen(function* () {
      expect(yield* databaseFrom({ DB_PATH: "/data/p.db" })).toEqual(
        Either.right({ _tag: "Sqlite", path: "/data/p.db" })
      )
      expect(yield* databaseFrom({ DATABASE_URL: " " })).toEqual(
        Either.right({ _tag: "Sqlite", path: "./products.db" })
      )
    })
  )

  it.effect(
    "a postgres URL selects PostgreSQL; what may be shown of it is host, port and database, never the password",
    () =>
      Effect.gen(function* () {
        const chosen = yield* databaseFrom({ DATABASE_URL: "postgresql://app:hunter2@db.internal:6543/catalog" })
        const settings = Either.getOrThrow(chosen)
        expect(settings).toMatchObject({ _tag: "Postgres", label: "db.internal:6543/catalog", poolSize: 10 })
        expect(String(settings)).not.toContain("hunter2")
        expect(JSON.stringify(settings)).not.toContain("hunter2")
        const defaultPort = Either.getOrThrow(yield* databaseFrom({ DATABASE_URL: "postgres://db/catalog" }))
        expect(defaultPort).toMatchObject({ label: "db:5432/catalog" })
      })
  )

  it.effect("a bad URL is refused naming the variable, without echoing its value", () =>
    Effect.gen(function* () {
      for (const url of ["mysql://u:hunter2@db/x", "postgres://u:hunter2@db", "postgres://u:hunter2@/x", "hunter2"]) {
        const result = yield* databaseFrom({ DATABASE_URL: url })
        expect(Either.isLeft(result), url).toBe(true)
        if (Either.isLeft(result)) {
          expect(String(result.left), url).toMatch(/Invalid data at DATABASE_URL:/)
          expect(String(result.left), url).not.toContain("hunter2")
        }
      }
    })
  )
})

describe("Redis topology", () => {
  const topologyFrom = (env: Record<string, string>) => Effect.either(withEnv(env)(AppConfig.redisTopology))

  it.effect("none set is a single node", () =>
    Effect.gen(function* () {
      expect(yield* topologyFrom({})).toEqual(Either.right({ _tag: "Single" }))
      expect(yield* topologyFrom({ REDIS_SENTINEL_NAME: "cache" })).toEqual(Either.right({ _tag: "Single" }))
    })
  )

  it.effect("REDIS_SENTINELS: each host:port in order, with the name (mymaster by default)", () =>
    Effect.gen(function* () {
      expect(yield* topologyFrom({ REDIS_SENTINELS: "10.0.0.1:26379, sentinel-b:26380 ,[::1]:26381" })).toEqual(
        Either.right({
          _tag: "Sentinel",
          name: "mymaster",
          sentinels: [
            { host: "10.0.0.1", port: 26379 },
            { host: "sentinel-b", port: 26380 },
            { host: "::1", port: 26381 }
          ]
        })
      )
      expect(yield* topologyFrom({ REDIS_SENTINELS: "s:1", REDIS_SENTINEL_NAME: "catalog" })).toEqual(
        Either.right({ _tag: "Sentinel", name: "catalog", sentinels: [{ host: "s", port: 1 }] })
      )
    })
  )

  it.effect("REDIS_CLUSTER_NODES: the seed nodes in order", () =>
    Effect.gen(function* () {
      expect(yield* topologyFrom({ REDIS_CLUSTER_NODES: "node-a:7000,node-b:65535" })).toEqual(
        Either.right({
          _tag: "Cluster",
          nodes: [
            { host: "node-a", port: 7000 },
            { host: "node-b", port: 65535 }
          ]
        })
      )
    })
  )

  it.effect("a malformed list is refused, naming its variable", () =>
    Effect.gen(function* () {
      // prettier-ignore
      const lists = [
        "", " ", ",", "a:1,", ",a:1", "a:1,,b:2", "a", "a:", ":1", "a:0", "a:65536", "a:-1", "a:1x", "a:1:2",
        "redis://a:1", "a b:1", "[::1:1"
      ]
      for (const name of ["REDIS_SENTINELS", "REDIS_CLUSTER_NODES"])
        for (const list of lists) {
          const result = yield* topologyFrom({ [name]: list })
          expect(Either.isLeft(result), `${name}=${list}`).toBe(true)
          if (Either.isLeft(result)) expect(String(result.left)).toMatch(new RegExp(`Invalid data at ${name}:`))
        }
    })
  )

  it.effect("REDIS_ADDR keeps its meaning beside them", () =>
    Effect.gen(function* () {
      const addr = yield* withEnv({ REDIS_ADDR: "[::1]:06379", REDIS_SENTINELS: "s:1" })(AppConfig.redisConnection)
      expect(Redacted.value(addr)).toBe("redis://[::1]:6379")
    })
  )
})
