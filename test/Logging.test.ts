import { describe, expect, it, vi } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, LogLevel } from "effect"
import * as AppConfig from "../src/AppConfig.js"
import * as Logging from "../src/Logging.js"

// LOG_FORMAT and LOG_LEVEL, and the Logging layer they choose.

describe("LOG_FORMAT and LOG_LEVEL", () => {
  const read = <A>(config: Effect.Effect<A, unknown>, env: Record<string, string>) =>
    Effect.exit(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(env)))))

  it.effect("LOG_FORMAT is json or pretty; JSON by default when stdout is not a terminal", () =>
    Effect.gen(function* () {
      expect(yield* read(AppConfig.logFormat, { LOG_FORMAT: "pretty" })).toEqual(Exit.succeed("pretty"))
      expect(yield* read(AppConfig.logFormat, { LOG_FORMAT: "json" })).toEqual(Exit.succeed("json"))
      expect(yield* read(AppConfig.logFormat, {})).toEqual(Exit.succeed(process.stdout.isTTY ? "pretty" : "json"))
      const bad = yield* read(AppConfig.logFormat, { LOG_FORMAT: "xml" })
      expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/LOG_FORMAT/)
    })
  )

  it.effect("LOG_LEVEL takes a level name in any case, info by default, and names itself when wrong", () =>
    Effect.gen(function* () {
      expect(yield* read(AppConfig.logLevel, {})).toEqual(Exit.succeed(LogLevel.Info))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "DEBUG" })).toEqual(Exit.succeed(LogLevel.Debug))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "warn" })).toEqual(Exit.succeed(LogLevel.Warning))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "warning" })).toEqual(Exit.succeed(LogLevel.Warning))
      expect(yield* read(AppConfig.logLevel, { LOG_LEVEL: "off" })).toEqual(Exit.succeed(LogLevel.None))
      const bad = yield* read(AppConfig.logLevel, { LOG_LEVEL: "loud" })
      expect(Exit.isFailure(bad) && String(bad.cause)).toMatch(/LOG_LEVEL.*loud/)
      const all = yield* read(AppConfig.all, { LOG_LEVEL: "loud" })
      expect(Exit.isFailure(all)).toBe(true)
    })
  )

  /** What the Logging layer writes for one warning and one debug line under `env`, each console.log call's text. */
  const written = (env: Record<string, string>) =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      yield* Effect.acquireRelease(
        Effect.sync(() =>
          vi.spyOn(console, "log").mockImplementation((...args) => void lines.push(args.map(String).join(" ")))
        ),
        (spy) => Effect.sync(() => spy.mockRestore())
      )
      yield* Effect.logWarning("disk nearly full").pipe(Effect.annotateLogs("disk", "sda"))
      yield* Effect.logDebug("not shown at info")
      return lines
    }).pipe(
      Effect.scoped,
      Effect.provide(Logging.layer),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )

  it.effect("LOG_FORMAT=json writes one JSON object a line, with the level, message and annotations", () =>
    Effect.gen(function* () {
      const lines = yield* written({ LOG_FORMAT: "json" })
      expect(lines).toHaveLength(1)
      expect(JSON.parse(lines[0]!)).toMatchObject({
        message: "disk nearly full",
        logLevel: "WARN",
        annotations: { disk: "sda" }
      })
    })
  )

  it.effect("LOG_FORMAT=pretty writes text for a person, not JSON", () =>
    Effect.gen(function* () {
      const lines = yield* written({ LOG_FORMAT: "pretty" })
      expect(lines.length).toBeGreaterThan(0)
      const text = lines.join("\n")
      expect(text).toContain("disk nearly full")
      expect(text).toContain("WARN")
      expect(() => JSON.parse(lines[0]!)).toThrow()
      expect(text).not.toContain("not shown at info")
    })
  )

  it.effect("LOG_LEVEL sets the minimum level: at error, a warning is not written", () =>
    Effect.gen(function* () {
      expect(yield* written({ LOG_FORMAT: "json", LOG_LEVEL: "error" })).toEqual([])
      expect(yield* written({ LOG_FORMAT: "json", LOG_LEVEL: "debug" })).toHaveLength(2)
    })
  )
})
