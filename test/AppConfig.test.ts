import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect } from "effect"
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
