import { Config, Either, LogLevel, Option } from "effect"
import { invalid, parseUrl } from "./Parse.js"

/** The name `/health` reports, and traces carry. */
export const serviceName = Config.string("SERVICE_NAME").pipe(Config.withDefault("redis-caching-demo"))

const logFormats = Config.literal("json", "pretty")

/** `json` (one object a line) or `pretty`; JSON unless a person is watching, i.e. stdout is a terminal. */
export const logFormat = logFormats("LOG_FORMAT").pipe(Config.withDefault(process.stdout.isTTY ? "pretty" : "json"))

/** The least severe level written (`LOG_LEVEL`, any case): trace, debug, info (default), warn, error, fatal, off. */
export const logLevel = Config.string("LOG_LEVEL").pipe(
  Config.withDefault("info"),
  Config.mapOrFail((text) => {
    const label = text.trim().toUpperCase()
    const level = LogLevel.allLevels.find((level) => level.label === (label === "WARNING" ? "WARN" : label))
    return level !== undefined
      ? Either.right(level)
      : Either.left(
          invalid(
            "LOG_LEVEL",
            `must be one of trace, debug, info, warn, error, fatal, off, got ${JSON.stringify(text)}`
          )
        )
  })
)

/** Where traces go over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. http://localhost:4318); none: tracing off. */
export const otlpEndpoint = Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT")).pipe(
  Config.mapOrFail((given) => {
    // OpenTelemetry treats an empty value as unset.
    if (Option.isNone(given) || given.value.trim() === "") return Either.right(Option.none<string>())
    return Option.match(parseUrl(given.value.trim(), ["http:", "https:"]), {
      onNone: () =>
        Either.left(
          invalid("OTEL_EXPORTER_OTLP_ENDPOINT", `must be an http(s) URL, got ${JSON.stringify(given.value)}`)
        ),
      onSome: (url) => Either.right(Option.some(url.href))
    })
  })
)

/**
 * `LOG_REQUESTS=true` writes one line per request. Off by default, as in Fastify: formatting and writing the line
 * cost a large share of a cache hit's throughput (figures in the README's benchmark section).
 */
export const logRequests = Config.boolean("LOG_REQUESTS").pipe(Config.withDefault(false))
