import { Config, ConfigError, Duration, Either, LogLevel, Option, Redacted } from "effect"
import * as GoDuration from "./GoDuration.js"

// Every variable of the contract, parsed once at the edge; a bad value stops the start naming the variable.

const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

// Config.validate reports its error at no path ("Invalid data at : ..."): this one names the variable.
const validate = <A>(name: string, message: string, validation: (value: A) => boolean) =>
  Config.mapOrFail((value: A) => (validation(value) ? Either.right(value) : Either.left(invalid(name, message))))

const goDuration = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((text) =>
      Option.match(GoDuration.parse(text), {
        onNone: () =>
          Either.left(invalid(name, `must be a duration such as 300ms, 30s, 5m or 1h30m, got ${JSON.stringify(text)}`)),
        onSome: (duration) =>
          Duration.toMillis(duration) >= 1
            ? Either.right(duration)
            : Either.left(invalid(name, `must be at least 1ms, got ${JSON.stringify(text)}`))
      })
    )
  )

/** Entry lifetime (`CACHE_TTL`, Go-style duration). */
export const cacheTtl = goDuration("CACHE_TTL", "5m")

/** Key prefix (`CACHE_PREFIX`). */
export const cachePrefix = Config.string("CACHE_PREFIX").pipe(
  Config.withDefault("product:"),
  validate("CACHE_PREFIX", "must not be empty or contain spaces", (p: string) => /^\S+$/.test(p))
)

/** `redis` (default) or `memory`, for running with no Redis at hand. */
export const cacheBackend = Config.literal("redis", "memory")("CACHE_BACKEND").pipe(Config.withDefault("redis"))

/** The longest any request waits on one Redis command before it is counted as an error and skipped. */
export const cacheTimeout = goDuration("CACHE_TIMEOUT", "200ms")

const redisAddr = Config.string("REDIS_ADDR").pipe(
  Config.withDefault("localhost:6379"),
  Config.mapOrFail((addr) => {
    const match = /^(\[[0-9a-fA-F:]+\]|[^:\s/]+):(\d{1,5})$/.exec(addr)
    const port = match ? Number(match[2]) : 0
    return match && port >= 1 && port <= 65535
      ? Either.right(`redis://${match[1]}:${port}`)
      : Either.left(invalid("REDIS_ADDR", `must be host:port, got ${JSON.stringify(addr)}`))
  })
)

const redisUrl = Config.redacted("REDIS_URL").pipe(
  Config.mapOrFail((secret) => {
    try {
      const url = new URL(Redacted.value(secret))
      if ((url.protocol === "redis:" || url.protocol === "rediss:") && url.hostname !== "") return Either.right(secret)
    } catch {
      // falls through to the error below; the value itself may hold a password, so it is not echoed
    }
    return Either.left(invalid("REDIS_URL", "must be redis://[user:password@]host:port[/db] or rediss://..."))
  })
)

/** `REDIS_URL` wins over `REDIS_ADDR`; redacted because it may carry a password. */
export const redisConnection = Config.option(redisUrl).pipe(
  Config.zipWith(redisAddr, (url, addr) => Option.getOrElse(url, () => Redacted.make(addr)))
)

/** SQLite file (`DB_PATH`); its folder is created at start. */
export const dbPath = Config.string("DB_PATH").pipe(
  Config.withDefault("./products.db"),
  validate("DB_PATH", "must not be empty", (p: string) => p.trim() !== "")
)

/** Listening port (`HTTP_PORT`). */
export const httpPort = Config.port("HTTP_PORT").pipe(Config.withDefault(3000))

/** The name `/health` reports. */
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
    try {
      const url = new URL(given.value.trim())
      if (url.protocol === "http:" || url.protocol === "https:") return Either.right(Option.some(url.href))
    } catch {
      // reported below
    }
    return Either.left(
      invalid("OTEL_EXPORTER_OTLP_ENDPOINT", `must be an http(s) URL, got ${JSON.stringify(given.value)}`)
    )
  })
)

/**
 * `LOG_REQUESTS=true` writes one line per request. Off by default, as in Fastify: formatting and writing the line
 * cost a third of a cache hit's throughput, measured (see the README's benchmark section).
 */
export const logRequests = Config.boolean("LOG_REQUESTS").pipe(Config.withDefault(false))

/** `WORKERS=N` serves with N processes on one port (Node's cluster module); 1, the default, is one process. */
export const workers = Config.integer("WORKERS").pipe(
  Config.withDefault(1),
  validate("WORKERS", "must be an integer from 1 to 64", (n: number) => n >= 1 && n <= 64)
)

/** The two together: separate processes can only share a cache that lives outside them. */
const workersWithSharedCache = Config.all([workers, cacheBackend]).pipe(
  validate(
    "WORKERS",
    "WORKERS above 1 needs CACHE_BACKEND=redis: an in-memory cache is per process, so invalidations would not reach the others",
    ([count, backend]: readonly [number, "redis" | "memory"]) => count === 1 || backend === "redis"
  )
)

/** Every variable at once, so a bad value stops the start before any connection is opened, each one reported. */
export const all = Config.all([
  cacheTtl,
  cachePrefix,
  cacheBackend,
  cacheTimeout,
  redisConnection,
  dbPath,
  httpPort,
  serviceName,
  logFormat,
  logLevel,
  logRequests,
  workersWithSharedCache,
  otlpEndpoint
])
