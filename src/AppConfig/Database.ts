import { Config, Duration, Either, Option, Redacted } from "effect"
import { boundedDuration, invalid, parseUrl } from "./Parse.js"

/** SQLite file (`DB_PATH`); its folder is created at start. */
export const dbPath = Config.string("DB_PATH").pipe(
  Config.validate({ message: "must not be empty", validation: (p) => p.trim() !== "" }),
  Config.withDefault("./products.db")
)

const oneMinute = { millis: 60_000, text: "1m" }

/**
 * The longest a statement waits, in all, for a lock another connection holds (`DB_BUSY_TIMEOUT`) before the request
 * answers 503. Capped at a minute: the client is held for that long.
 */
export const dbBusyTimeout = boundedDuration("DB_BUSY_TIMEOUT", "3s", oneMinute)

const databaseName = (url: URL) => decodeURIComponent(url.pathname.replace(/^\//, ""))

/**
 * PostgreSQL (`DATABASE_URL=postgres://user:password@host:port/database`); unset, the service keeps SQLite at
 * `DB_PATH`. Redacted: it may carry a password, so no error here echoes it.
 */
export const databaseUrl = Config.option(
  Config.redacted("DATABASE_URL").pipe(
    Config.mapOrFail((secret) => {
      const text = Redacted.value(secret).trim()
      if (text === "") return Either.right(Option.none<Redacted.Redacted>())
      return Option.isSome(parseUrl(text, ["postgres:", "postgresql:"], (url) => databaseName(url) !== ""))
        ? Either.right(Option.some(Redacted.make(text)))
        : Either.left(invalid("DATABASE_URL", "must be postgres://[user[:password]@]host[:port]/database"))
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
export const dbStatementTimeout = boundedDuration("DB_STATEMENT_TIMEOUT", "5s", oneMinute)

/** How long the start waits for PostgreSQL to answer before it gives up with exit code 1 (`DB_START_TIMEOUT`). */
export const dbStartTimeout = boundedDuration("DB_START_TIMEOUT", "30s", { millis: 600_000, text: "10m" })

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
  return `${parsed.hostname}:${parsed.port || "5432"}/${databaseName(parsed)}`
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
