// One bad value for every variable src/AppConfig.ts reads, with the variable its error must name. A variable added
// there needs a row here: test/AppConfig.test.ts fails until it has one.

export interface InvalidConfig {
  /** The variable the error must name: `Invalid data at <name>: ...`. */
  readonly name: string
  /** What is set; usually just `name`, sometimes a combination that is wrong only together. */
  readonly env: Record<string, string>
}

export const rows: ReadonlyArray<InvalidConfig> = [
  { name: "CACHE_TTL", env: { CACHE_TTL: "5minutes" } },
  { name: "CACHE_PREFIX", env: { CACHE_PREFIX: "two words" } },
  { name: "CACHE_GRACE", env: { CACHE_GRACE: "forever" } },
  { name: "CACHE_REFRESH_AHEAD", env: { CACHE_REFRESH_AHEAD: "sometimes" } },
  { name: "CACHE_BACKEND", env: { CACHE_BACKEND: "disk" } },
  { name: "CACHE_TIMEOUT", env: { CACHE_TIMEOUT: "0" } },
  { name: "REDIS_ADDR", env: { REDIS_ADDR: "nohost" } },
  { name: "REDIS_URL", env: { REDIS_URL: "http://cache:6379" } },
  { name: "DB_PATH", env: { DB_PATH: "" } },
  { name: "HTTP_PORT", env: { HTTP_PORT: "abc" } },
  { name: "LOG_FORMAT", env: { LOG_FORMAT: "xml" } },
  { name: "LOG_LEVEL", env: { LOG_LEVEL: "loud" } },
  { name: "LOG_REQUESTS", env: { LOG_REQUESTS: "maybe" } },
  { name: "WORKERS", env: { WORKERS: "0" } },
  { name: "WORKERS", env: { WORKERS: "2", CACHE_BACKEND: "memory" } },
  { name: "OTEL_EXPORTER_OTLP_ENDPOINT", env: { OTEL_EXPORTER_OTLP_ENDPOINT: "ftp://collector" } },
  { name: "CACHE_MAX_PAGES", env: { CACHE_MAX_PAGES: "0" } },
  { name: "DB_BUSY_TIMEOUT", env: { DB_BUSY_TIMEOUT: "2m" } },
  { name: "HOST", env: { HOST: "not a host" } },
  { name: "REQUEST_TIMEOUT", env: { REQUEST_TIMEOUT: "soon" } },
  { name: "HEADERS_TIMEOUT", env: { HEADERS_TIMEOUT: "0" } },
  { name: "MAX_CONNECTIONS", env: { MAX_CONNECTIONS: "none" } },
  { name: "DASHBOARD_MAX_FEEDS", env: { DASHBOARD_MAX_FEEDS: "0" } },
  // The password must not be echoed: test/AppConfig.test.ts checks that the error leaves it out.
  { name: "DATABASE_URL", env: { DATABASE_URL: "mysql://user:hunter2@db:3306/catalog" } },
  { name: "DB_POOL_SIZE", env: { DB_POOL_SIZE: "0" } },
  { name: "DB_STATEMENT_TIMEOUT", env: { DB_STATEMENT_TIMEOUT: "2m" } },
  { name: "DB_START_TIMEOUT", env: { DB_START_TIMEOUT: "soon" } },
  // One row each: every row with a variable of its own costs test/integration/Process.test.ts a process. The other
  // malformed lists are in test/AppConfig.test.ts.
  { name: "REDIS_SENTINELS", env: { REDIS_SENTINELS: "127.0.0.1:26379,,127.0.0.1:26380" } },
  { name: "REDIS_SENTINEL_NAME", env: { REDIS_SENTINEL_NAME: "" } },
  { name: "REDIS_CLUSTER_NODES", env: { REDIS_CLUSTER_NODES: "127.0.0.1:7000,node-b" } },
  // Valid each alone, contradictory together: the cluster is the one named.
  { name: "REDIS_CLUSTER_NODES", env: { REDIS_SENTINELS: "sentinel-a:26379", REDIS_CLUSTER_NODES: "node-a:7000" } }
]

/** Variables that take any text, so no value of theirs is invalid. */
export const anyValue: ReadonlyArray<string> = ["SERVICE_NAME"]

/**
 * The rows packed into few processes, each process given several bad variables at once (every one must be named):
 * no variable twice in one process, and a row setting WORKERS alone, since main.ts reads WORKERS before the rest
 * (to decide whether to fork) and a bad one is then the only error reported.
 */
export const processes = (all: ReadonlyArray<InvalidConfig> = rows): ReadonlyArray<ReadonlyArray<InvalidConfig>> => {
  const packed: Array<Array<InvalidConfig>> = []
  const alone = (row: InvalidConfig) => "WORKERS" in row.env
  for (const row of all) {
    const fits = (batch: ReadonlyArray<InvalidConfig>) =>
      !alone(row) && batch.every((other) => !alone(other) && Object.keys(row.env).every((name) => !(name in other.env)))
    const batch = packed.find(fits)
    if (batch === undefined) packed.push([row])
    else batch.push(row)
  }
  return packed
}
