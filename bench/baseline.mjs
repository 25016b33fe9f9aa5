// The baseline: the same cache-aside reads and invalidating writes as the service, with nothing but node:http,
// ioredis and better-sqlite3. No guards, no single-flight, no validation beyond what the bench sends: the floor
// against which the service's extra work is measured. Not a product: only the routes the bench drives.
//
// Its Redis client has the service's fail-fast timeouts (src/Cache/Redis/Connection.ts), so the comparison measures
// what the service adds, not a timeout; keep them in step. It keeps ioredis's auto-pipelining, which the service turned
// off: a plain implementation sends a GET per request, and auto-pipelining joins a turn's GETs into one write (without
// it, the same req/s with two writes a request and four times the Redis CPU, measured). A cache error is answered from
// the database, as the service answers it.
//
// env: HTTP_PORT, REDIS_URL, DB_PATH (an existing SQLite file with the service's schema), CACHE_TTL (ms|s|m|h),
// CACHE_PREFIX, CACHE_TIMEOUT (ms|s|m|h; 200ms, the service's default).
import Database from "better-sqlite3"
import { Redis } from "ioredis"
import { createServer } from "node:http"

const port = Number(process.env.HTTP_PORT ?? 3100)
const prefix = process.env.CACHE_PREFIX ?? "baseline:"
const ttlMillis = parseDuration("CACHE_TTL", process.env.CACHE_TTL ?? "5m")
const timeoutMillis = parseDuration("CACHE_TIMEOUT", process.env.CACHE_TIMEOUT ?? "200ms")

function parseDuration(name, text) {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim())
  if (!match) throw new Error(`${name}: expected e.g. 300ms, 30s, 5m, got ${JSON.stringify(text)}`)
  return Number(match[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[match[2]]
}

const db = new Database(process.env.DB_PATH ?? "./baseline.db", { fileMustExist: true })
db.pragma("journal_mode = WAL")
// As the service: each commit synced, so an answered write survives a power cut (SQLite's build gives a database in
// WAL mode NORMAL, and the two would not do the same work).
db.pragma("synchronous = FULL")
db.pragma("busy_timeout = 5000")
const byId = db.prepare("SELECT * FROM products WHERE id = ?")
/** @type {import("better-sqlite3").Statement<[number, number], { total: number } & Record<string, unknown>>} */
const page = db.prepare("SELECT *, (SELECT COUNT(*) FROM products) AS total FROM products ORDER BY id LIMIT ? OFFSET ?")
/** @type {import("better-sqlite3").Statement<[], { total: number }>} */
const count = db.prepare("SELECT COUNT(*) AS total FROM products")

const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: timeoutMillis,
  connectTimeout: Math.max(timeoutMillis, 1000),
  retryStrategy: (attempt) => Math.min(attempt * 100, 2000),
  lazyConnect: true,
  enableAutoPipelining: true
})
// Failures surface as rejected commands (counted as cache errors); without a listener ioredis prints each one.
redis.on("error", () => {})

const stats = { hits: 0, misses: 0, sets: 0, deletes: 0, errors: 0, db_loads: 0 }
const snapshot = () => {
  const total = stats.hits + stats.misses
  return { ...stats, hit_rate: total === 0 ? 0 : stats.hits / total, total_gets: total }
}

const send = (res, status, body, cache) => {
  const headers = { "content-type": "application/json", "content-length": Buffer.byteLength(body) }
  if (cache !== undefined) headers["x-cache"] = cache
  res.writeHead(status, headers)
  res.end(body)
}
const fail = (res, status, error, message) => send(res, status, JSON.stringify({ error, message }))

// A failed cache command costs the request its cache, not its answer.
const orCacheError = (promise) =>
  promise.catch(() => {
    stats.errors++
    return undefined
  })

// Cache-aside: GET; on a miss load, SET with PX (a list page also names itself in the index), answer.
const readThrough = async (key, load, indexed = false) => {
  const cached = await orCacheError(redis.get(key))
  if (typeof cached === "string") {
    stats.hits++
    return { json: cached, fromCache: true }
  }
  if (cached === null) stats.misses++
  stats.db_loads++
  const json = load()
  if (json === undefined) return undefined
  if (cached === null) {
    const stored = orCacheError(redis.set(key, json, "PX", ttlMillis))
    if (indexed) void orCacheError(redis.sadd(listIndex, key))
    if ((await stored) !== undefined) stats.sets++
  }
  return { json, fromCache: false }
}

// Every cached list page is named in one set of the baseline's own (as the service's index names its pages), so a write
// removes the pages it cached and nothing else: no SCAN over a keyspace that may hold other clients' keys.
const listIndex = `${prefix}lists`
redis.defineCommand("unlinkIndexed", {
  numberOfKeys: 1,
  lua: `local keys = redis.call("SMEMBERS", KEYS[1])
local removed = 0
for i = 1, #keys, 1000 do removed = removed + redis.call("UNLINK", unpack(keys, i, math.min(i + 999, #keys))) end
redis.call("UNLINK", KEYS[1])
return removed`
})

// A write's invalidations: the product's key and every list page, sent in the same turn (auto-pipelining puts them
// in one round trip), as a plain implementation would.
const invalidate = (id) =>
  Promise.all([
    orCacheError(redis.unlink(`${prefix}id:${id}`)),
    orCacheError(/** @type {any} */ (redis).unlinkIndexed(listIndex))
  ]).then(([one, lists]) => (stats.deletes += (one ?? 0) + (lists ?? 0)))

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = []
    req.on("data", (chunk) => chunks.push(chunk))
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

const updatable = new Set(["name", "description", "price", "stock", "category"])
const updates = new Map()
const updateStatement = (fields) => {
  const sql = `UPDATE products SET ${fields.map((f) => `${f} = ?`).join(", ")}, updated_at = ? WHERE id = ? RETURNING *`
  let statement = updates.get(sql)
  if (statement === undefined) updates.set(sql, (statement = db.prepare(sql)))
  return statement
}

const handle = async (req, res) => {
  const started = performance.now()
  const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000
  const url = new URL(req.url, "http://localhost")
  const idMatch = /^\/api\/v1\/products\/(\d+)$/.exec(url.pathname)

  if (idMatch && req.method === "GET") {
    const id = Number(idMatch[1])
    const found = await readThrough(`${prefix}id:${id}`, () => {
      const row = byId.get(id)
      return row === undefined ? undefined : JSON.stringify(row)
    })
    if (found === undefined) return fail(res, 404, "not_found", `product ${id} not found`)
    return send(
      res,
      200,
      `{"product":${found.json},"from_cache":${found.fromCache},"duration_ms":${elapsed()}}`,
      found.fromCache ? "HIT" : "MISS"
    )
  }

  if (idMatch && req.method === "PUT") {
    const id = Number(idMatch[1])
    let patch
    try {
      patch = JSON.parse(await readBody(req))
    } catch {
      return fail(res, 400, "invalid_request", "body is not JSON")
    }
    const fields = Object.keys(patch ?? {}).filter((field) => updatable.has(field))
    if (fields.length === 0) return fail(res, 400, "invalid_request", "nothing to update")
    const row = updateStatement(fields).get(...fields.map((f) => patch[f]), new Date().toISOString(), id)
    if (row === undefined) return fail(res, 404, "not_found", `product ${id} not found`)
    await invalidate(id)
    return send(res, 200, JSON.stringify({ message: "Product updated successfully, cache invalidated", product: row }))
  }

  if (url.pathname === "/api/v1/products" && req.method === "GET") {
    const offset = Number(url.searchParams.get("offset") ?? 0)
    const limit = Math.min(Number(url.searchParams.get("limit") ?? 20), 100)
    // A page always loads (an empty one included), so the read always answers.
    const found = /** @type {{ json: string; fromCache: boolean }} */ (
      await readThrough(
        `${prefix}list:${offset}:${limit}`,
        () => {
          const rows = page.all(limit, offset)
          const total = rows.length > 0 ? rows[0].total : count.get()?.total
          return JSON.stringify({ products: rows.map(({ total: _, ...product }) => product), total })
        },
        true
      )
    )
    return send(
      res,
      200,
      `${found.json.slice(0, -1)},"offset":${offset},"limit":${limit},"from_cache":${found.fromCache},"duration_ms":${elapsed()}}`,
      found.fromCache ? "HIT" : "MISS"
    )
  }

  if (url.pathname === "/api/v1/cache/stats" && req.method === "GET") {
    return send(res, 200, JSON.stringify({ cache_stats: snapshot(), timestamp: new Date().toISOString() }))
  }
  if (url.pathname === "/api/v1/cache/stats/reset" && req.method === "POST") {
    for (const key of Object.keys(stats)) stats[key] = 0
    return send(res, 200, JSON.stringify({ message: "Cache statistics reset", cache_stats: snapshot() }))
  }
  if (url.pathname === "/health" && req.method === "GET") {
    const cache = await redis.ping().then(
      () => "up",
      () => "down"
    )
    return send(res, 200, JSON.stringify({ service: "baseline", status: cache === "up" ? "healthy" : "degraded" }))
  }
  return fail(res, 404, "not_found", "no such route")
}

const server = createServer((req, res) => {
  handle(req, res).catch((error) => {
    if (!res.headersSent) fail(res, 500, "internal_error", String(error?.message ?? error))
  })
})

// With the offline queue off, a command before the connection is up fails: connect first, as the service does.
await redis.connect().catch((error) => console.error(`baseline: Redis unreachable at start: ${error.message}`))
server.listen(port, "127.0.0.1")

const stop = () => {
  server.close()
  server.closeAllConnections()
  redis.disconnect()
  db.close()
  process.exit(0)
}
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
