import { Effect, Layer, Logger } from "effect"
import * as AppConfig from "./AppConfig.js"

const loggers = { json: Logger.withConsoleLog(Logger.jsonLogger), pretty: Logger.prettyLoggerDefault }

/**
 * The runtime's logger as `LOG_FORMAT` and `LOG_LEVEL` say. main.ts provides it below every other layer, so the
 * server and everything it runs log through it; a level above info also drops the per-request line.
 */
export const layer = Layer.unwrapEffect(
  Effect.map(Effect.all([AppConfig.logFormat, AppConfig.logLevel]), ([format, level]) => {
    const logger = loggers[format]
    // NodeRuntime.runMain has already swapped Effect's default logger for its pretty one: replace whichever is there.
    return Logger.replace(Logger.defaultLogger, logger).pipe(
      Layer.provide(Logger.replace(Logger.prettyLoggerDefault, logger)),
      Layer.provide(Logger.minimumLogLevel(level))
    )
  })
)
