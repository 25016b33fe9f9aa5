import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, FiberRef, Logger, LogLevel } from "effect"
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

  it.effect("the Logging layer sets the minimum level and the one logger LOG_FORMAT names", () =>
    Effect.gen(function* () {
      expect((yield* FiberRef.get(FiberRef.currentMinimumLogLevel)).label).toBe("ERROR")
      const loggers = yield* FiberRef.get(FiberRef.currentLoggers)
      expect(loggers.pipe((set) => [...set].includes(Logger.defaultLogger))).toBe(false)
    }).pipe(
      Effect.provide(Logging.layer),
      Effect.withConfigProvider(
        ConfigProvider.fromMap(
          new Map([
            ["LOG_LEVEL", "error"],
            ["LOG_FORMAT", "json"]
          ])
        )
      )
    )
  )
})
