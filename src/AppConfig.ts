import { Config, ConfigError, Duration, Either, LogLevel, Option, Redacted } from "effect"
import { availableParallelism } from "node:os"
import { defaultMaxPages } from "./Cache/Keys.js"
import { isIP } from "node:net"
import * as GoDuration from "./AppConfig/GoDuration.js"

// Every variable of the contract, parsed once at the edge; a bad value stops the start naming the variable.
// A check goes before its default: placed after `Config.withDefault`, its error loses the variable's name.

const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

/** A Go-style duration of at least 1ms; `text` is the variable's value, with its default if it has one. */
/** A Go-style duration of at least 1ms, or the error naming `name`. */
const parseDuration = (name: string, text: string): Either.Either<Duration.Duration, ConfigError.ConfigError> =>
  Option.match(GoDuration.parse(text), {
    onNone: () =>
      Either.left(invalid(name, `must be a duration such as 300ms, 30s, 5m or 1h30m, got ${JSON.stringify(text)}`)),
    onSome: (duration) =>
      Duration.toMillis(duration) >= 1
        ? Either.right(duration)
        : Either.left(invalid(name, `must be at least 1ms, got ${JSON.stringify(text)}`))
  })

/** A check after a default or across variables: `Config.validate` would report it at no path ("Invalid data at :"). */
const validateNamed = <A>(name: string, message: string, validation: (value: A) => boolean) =>
  Config.mapOrFail((value: A) => (validation(value) ? Either.right(value) : Either.left(invalid(name, message))))

const goDuration = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((text) => parseDuration(name, text))
  )

/** Entry lifetime (`CACHE_TTL`, Go-style duration). */
export const cacheTtl = goDuration("CACHE_TTL", "5m")

/**
 * How long an entry's fallback copy outlives it (`CACHE_GRACE`, Go-style duration): a read whose database load fails
 * answers with that copy (`X-Cache: STALE`) rather than a 503. Unset, empty, `0` or `off`: no copy is kept.
 */
export const cacheGrace = Config.string("CACHE_GRACE").pipe(
  Config.withDefault("off"),
  Config.mapOrFail((text) =>
    text.trim() === "" || text.trim() === "off" || text.trim() === "0"
      ? Either.right(Duration.zero)
      : parseDuration("CACHE_GRACE", text.trim())
  )
)

/**
 * Refresh ahead (`CACHE_REFRESH_AHEAD`, default true): a hit on an entry close to expiry may reload it in the
 * background (XFetch), so a hot key does not miss when its TTL ends. `false` leaves every entry to expire.
 */
export const cacheRefreshAhead = Config.boolean("CACHE_REFRESH_AHEAD").pipe(Config.withDefault(true))

/** Key prefix (`CACHE_PREFIX`). */
export const cachePrefix = Config.string("CACHE_PREFIX").pipe(
  Config.validate({ message: "must not be empty or contain spaces", validation: (p) => /^\S+$/.test(p) }),
  Config.withDefault("product:")
)

/** `redis` (default) or `memory`, for running with no Redis at hand. */
export const cacheBackend = Config.literal("redis", "memory")("CACHE_BACKEND").pipe(Config.withDefault("redis"))

/**
 * How many list pages the cache keeps (`CACHE_MAX_PAGES`): every `offset`/`limit` pair is a page of its own, so
 * without a bound anonymous clients could grow Redis at will. A fill beyond it evicts the page that expires first.
 * Capped so that the single script that removes every page on a write stays well inside CACHE_TIMEOUT. Validated
 * before the default is applied: the other way round, the error would not name the variable.
 */
export const cacheMaxPages = Config.integer("CACHE_MAX_PAGES").pipe(
  Config.validate({ message: "must be an integer from 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 }),
  Config.withDefault(defaultMaxPages)
)

/** The longest any request waits on one Redis command before it is counted as an error and skipped. */
export const cacheTimeout = goDuration("CACHE_TIMEOUT", "200ms")

/** A Redis node's address; an IPv6 host is kept without its brackets, as ioredis takes it. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** `host:port`, `[v6]:port`; the port 1-65535. */
const parseHostPort = (text: string): Option.Option<HostPort> => {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s/,\[\]]+):(\d{1,5})$/.exec(text)
  const port = match ? Number(match[2]) : 0
  return match && port >= 1 && port <= 65535
    ? Option.some({ host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port })
    : Option.none()
}

const redisAddr = Config.string("REDIS_ADDR").pipe(
  Config.withDefault("localhost:6379"),
  Config.mapOrFail((addr) =>
    Option.match(parseHostPort(addr), {
      onNone: () => Either.left(invalid("REDIS_ADDR", `must be host:port, got ${JSON.stringify(addr)}`)),
      onSome: ({ host, port }) => Either.right(`redis://${host.includes(":") ? `[${host}]` : host}:${port}`)
    })
  )
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

/** `host:port,host:port,...` (spaces around an element allowed); unset is none, an empty list or element is refused. */
const hostPortList = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Config.mapOrFail((given) => {
      if (Option.isNone(given)) return Either.right(Option.none<ReadonlyArray<HostPort>>())
      const elements = given.value.split(",").map((element) => element.trim())
      const nodes = elements.flatMap((element) => Option.toArray(parseHostPort(element)))
      return nodes.length === elements.length
        ? Either.right(Option.some(nodes))
        : Either.left(
            invalid(name, `must be host:port,host:port,... (port 1-65535), got ${JSON.stringify(given.value)}`)
          )
    })
  )

/** Where Redis runs: one node at `REDIS_ADDR`/`REDIS_URL`, a master the Sentinels name, or a Cluster's masters. */
export type RedisTopology =
  | { readonly _tag: "Single" }
  | { readonly _tag: "Sentinel"; readonly sentinels: ReadonlyArray<HostPort>; readonly name: string }
  | { readonly _tag: "Cluster"; readonly nodes: ReadonlyArray<HostPort> }

/**
 * `REDIS_SENTINELS` (with `REDIS_SENTINEL_NAME`) or `REDIS_CLUSTER_NODES`, never both: they win over the host of
 * `REDIS_ADDR`/`REDIS_URL`, whose password and TLS still apply. The name is checked even when unused, so a typo
 * shows at once rather than on the day Sentinels are set.
 */
export const redisTopology: Config.Config<RedisTopology> = Config.all([
  hostPortList("REDIS_SENTINELS"),
  Config.string("REDIS_SENTINEL_NAME").pipe(
    Config.validate({ message: "must not be empty or contain spaces", validation: (n) => /^\S+$/.test(n) }),
    Config.withDefault("mymaster")
  ),
  hostPortList("REDIS_CLUSTER_NODES")
]).pipe(
  Config.mapOrFail(([sentinels, name, nodes]) =>
    Option.isSome(sentinels) && Option.isSome(nodes)
      ? Either.left(invalid("REDIS_CLUSTER_NODES", "must not be set together with REDIS_SENTINELS"))
      : Either.right<RedisTopology>(
          Option.isSome(sentinels)
            ? { _tag: "Sentinel", sentinels: sentinels.value, name }
            : Option.isSome(nodes)
              ? { _tag: "Cluster", nodes: nodes.value }
              : { _tag: "Single" }
        )
  )
)

/** SQLite file (`DB_PATH`); its folder is created at start. */
export const dbPath = Config.string("DB_PATH").pipe(
  Config.validate({ message: "must not be empty", validation: (p) => p.trim() !== "" }),
  Config.withDefault("./products.db")
)

/**
 * The longest a statement waits, in all, for a lock another connection holds (`DB_BUSY_TIMEOUT`) before the request
 * answers 503. Capped at a minute: the client is held for that long.
 */
export const dbBusyTimeout = goDuration("DB_BUSY_TIMEOUT", "3s").pipe(
  validateNamed(
    "DB_BUSY_TIMEOUT",
    "must be at most 1m",
    (duration: Duration.Duration) => Duration.toMillis(duration) <= 60_000
  )
)

/**
 * PostgreSQL (`DATABASE_URL=postgres://user:password@host:port/database`); unset, the service keeps SQLite at
 * `DB_PATH`. Redacted: it may carry a password, so no error here echoes it.
 */
export const databaseUrl = Config.option(
  Config.redacted("DATABASE_URL").pipe(
    Config.mapOrFail((secret) => {
      const text = Redacted.value(secret).trim()
      if (text === "") return Either.right(Option.none<Redacted.Redacted>())
      try {
        const url = new URL(text)
        const database = decodeURIComponent(url.pathname.replace(/^\//, ""))
        if ((url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== "" && database !== "")
          return Either.right(Option.some(Redacted.make(text)))
      } catch {
        // reported below, without the value
      }
      return Either.left(invalid("DATABASE_URL", "must be postgres://[user[:password]@]host[:port]/database"))
    })
  )
).pipe(Config.map(Option.flatten))

/** Connections each process keeps to PostgreSQL at most (`DB_POOL_SIZE`). */
export const dbPoolSize = Config.integer("DB_POOL_SIZE").pipe(
  Config.validate({ message: "must be an integer from 1 to 100", validation: (n) => n >= 1 && n <= 100 }),
  Config.withDefault(10)
)

/**
 * The longest one PostgreSQL statement may run (`DB_STATEMENT_TIMEOUT`), also the longest to wait for a connection:
 * past it the request answers 503, so a lost database cannot hold requests for longer.
 */
export const dbStatementTimeout = goDuration("DB_STATEMENT_TIMEOUT", "5s").pipe(
  validateNamed(
    "DB_STATEMENT_TIMEOUT",
    "must be at most 1m",
    (duration: Duration.Duration) => Duration.toMillis(duration) <= 60_000
  )
)

/** How long the start waits for PostgreSQL to answer before it gives up with exit code 1 (`DB_START_TIMEOUT`). */
export const dbStartTimeout = goDuration("DB_START_TIMEOUT", "30s").pipe(
  validateNamed(
    "DB_START_TIMEOUT",
    "must be at most 10m",
    (duration: Duration.Duration) => Duration.toMillis(duration) <= 600_000
  )
)

export interface PostgresSettings {
  readonly url: Redacted.Redacted
  /** `host:port/database`, what a log line or an error may say of the URL: never its user or password. */
  readonly label: string
  readonly poolSize: number
  readonly statementTimeout: Duration.Duration
  readonly startTimeout: Duration.Duration
}

/** Where the products live: SQLite at `DB_PATH`, or PostgreSQL when `DATABASE_URL` is set. */
export type DatabaseSettings =
  { readonly _tag: "Sqlite"; readonly path: string } | ({ readonly _tag: "Postgres" } & PostgresSettings)

/** Says where a PostgreSQL URL points, without its credentials. */
export const postgresLabel = (url: Redacted.Redacted): string => {
  const parsed = new URL(Redacted.value(url))
  return `${parsed.hostname}:${parsed.port || "5432"}/${decodeURIComponent(parsed.pathname.replace(/^\//, ""))}`
}

export const database: Config.Config<DatabaseSettings> = Config.all([
  databaseUrl,
  dbPath,
  dbPoolSize,
  dbStatementTimeout,
  dbStartTimeout
]).pipe(
  Config.map(([url, path, poolSize, statementTimeout, startTimeout]): DatabaseSettings =>
    Option.match(url, {
      onNone: () => ({ _tag: "Sqlite", path }),
      onSome: (url) => ({
        _tag: "Postgres",
        url,
        label: postgresLabel(url),
        poolSize,
        statementTimeout,
        startTimeout
      })
    })
  )
)

/** Listening port (`HTTP_PORT`). */
export const httpPort = Config.port("HTTP_PORT").pipe(Config.withDefault(3000))

// A host name as DNS spells it: dot-separated labels of letters, digits and inner hyphens.
const hostName = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

/**
 * The listening address (`HOST`): unset or empty, every interface, IPv6 and IPv4 alike, as before — what a container
 * needs for its published port; `127.0.0.1` keeps the service to this machine.
 */
export const host = Config.option(Config.string("HOST")).pipe(
  Config.mapOrFail((given) => {
    const text = Option.getOrElse(given, () => "").trim()
    if (text === "") return Either.right(undefined)
    return isIP(text) !== 0 || hostName.test(text)
      ? Either.right(text)
      : Either.left(
          invalid(
            "HOST",
            `must be an IP address or a host name such as 127.0.0.1, ::1 or localhost, got ${JSON.stringify(text)}`
          )
        )
  })
)

/** The longest a client may take to send a whole request (`REQUEST_TIMEOUT`); a slower one is answered 408. */
export const requestTimeout = goDuration("REQUEST_TIMEOUT", "30s")

/**
 * With the longest it may take to send the headers (`HEADERS_TIMEOUT`): 10 s by default, or `REQUEST_TIMEOUT` if that
 * is shorter, so setting only the one never contradicts the other; a value set longer than `REQUEST_TIMEOUT` is
 * refused, as Node would refuse it.
 */
export const clientTimeouts = Config.all({
  requestTimeout,
  // Parsed on its own, so a bad value is reported also when REQUEST_TIMEOUT is bad too.
  headersTimeout: Config.string("HEADERS_TIMEOUT").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      text === "" ? Either.right(Option.none()) : Either.map(parseDuration("HEADERS_TIMEOUT", text), Option.some)
    )
  )
}).pipe(
  Config.mapOrFail(({ headersTimeout: given, requestTimeout }) =>
    Option.match(given, {
      onNone: () =>
        Either.right({ requestTimeout, headersTimeout: Duration.min(Duration.seconds(10), requestTimeout) }),
      onSome: (headersTimeout) =>
        Duration.lessThanOrEqualTo(headersTimeout, requestTimeout)
          ? Either.right({ requestTimeout, headersTimeout })
          : Either.left(
              invalid("HEADERS_TIMEOUT", `must not be longer than REQUEST_TIMEOUT (${Duration.format(requestTimeout)})`)
            )
    })
  )
)

/**
 * Open connections per process (`MAX_CONNECTIONS`); one more is closed as it arrives. 10,000 is far above what one
 * process serves usefully (a load balancer or the bench keeps tens to hundreds open) and far below the file
 * descriptors and memory that a flood of idle connections would otherwise take.
 */
export const maxConnections = Config.integer("MAX_CONNECTIONS").pipe(
  Config.validate({ message: "must be a whole number of at least 1", validation: (n) => n >= 1 }),
  Config.withDefault(10_000)
)

/**
 * Open dashboard feeds per process (`DASHBOARD_MAX_FEEDS`); one more is answered 503 with `Retry-After`. The feed
 * computes one event a tick whatever the number of feeds, but each one still takes a connection and a write a second.
 */
export const dashboardMaxFeeds = Config.integer("DASHBOARD_MAX_FEEDS").pipe(
  Config.validate({ message: "must be a whole number of at least 1", validation: (n) => n >= 1 }),
  Config.withDefault(100)
)

/** Everything the Node server is built with. */
export const httpServer = Config.all([httpPort, host, clientTimeouts, maxConnections]).pipe(
  Config.map(([port, host, timeouts, maxConnections]) => ({ port, host, ...timeouts, maxConnections }))
)

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
 * cost a large share of a cache hit's throughput (figures in the README's benchmark section).
 */
export const logRequests = Config.boolean("LOG_REQUESTS").pipe(Config.withDefault(false))

/**
 * `WORKERS=N` serves with N processes on one port (Node's cluster module); 1, the default, is one process; `auto` is
 * one per core the process may use (`os.availableParallelism()`).
 */
export const workers = Config.string("WORKERS").pipe(
  Config.withDefault("1"),
  Config.mapOrFail((text) => {
    const count = text.trim() === "auto" ? availableParallelism() : /^[0-9]{1,2}$/.test(text.trim()) ? Number(text) : 0
    return count >= 1 && count <= 64
      ? Either.right(count)
      : Either.left(invalid("WORKERS", `must be auto or an integer from 1 to 64, got ${JSON.stringify(text)}`))
  })
)

/** The two together: separate processes can only share a cache that lives outside them. */
const workersWithSharedCache = Config.all([workers, cacheBackend]).pipe(
  validateNamed(
    "WORKERS",
    "WORKERS above 1 needs CACHE_BACKEND=redis: an in-memory cache is per process, so invalidations would not reach the others",
    ([count, backend]: readonly [number, "redis" | "memory"]) => count === 1 || backend === "redis"
  )
)

/** Every variable at once, so a bad value stops the start before any connection is opened, each one reported. */
export const all = Config.all([
  cacheTtl,
  cacheGrace,
  cacheRefreshAhead,
  cachePrefix,
  cacheBackend,
  cacheTimeout,
  cacheMaxPages,
  redisConnection,
  redisTopology,
  dbPath,
  dbBusyTimeout,
  database,
  httpPort,
  httpServer,
  serviceName,
  logFormat,
  logLevel,
  logRequests,
  workersWithSharedCache,
  otlpEndpoint,
  dashboardMaxFeeds
])
