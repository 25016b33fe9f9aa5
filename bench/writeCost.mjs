// What a write costs below HTTP, independent of the machine's load: `node bench/writeCost.mjs [dist] [count]`, after
// `npm run build` (or with an earlier commit's build folder, for an A/B).
//
// Runs ProductService.update in this process, as the service composes it (Redis behind the circuit breaker, SQLite,
// tracing off), on a private redis-server and a fresh SQLite file seeded with 1,000 products: `count` updates one
// after the other, then `count` with 50 at a time, and prints the process's CPU time per update for each. CPU time
// is what a neighbour's load disturbs least; alternate builds and compare medians. Under valgrind
// (`valgrind --tool=callgrind --instr-atstart=no node --single-threaded bench/writeCost.mjs dist 2000 --callgrind`)
// instructions are counted around the sequential updates only: the figure that does not move with the machine.
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { promisify } from "node:util"
import { startRedis } from "./lib/servers.mjs"

const [distArg = "dist", countArg = "3000", flag] = process.argv.slice(2)
const dist = resolve(import.meta.dirname, "..", distArg)
const count = Number(countArg)
const tmp = mkdtempSync(join(tmpdir(), "write-cost-"))
const redis = await startRedis({ taken: new Set(), tmp })
Object.assign(process.env, {
  NODE_ENV: "production",
  REDIS_URL: redis.url,
  DB_PATH: join(tmp, "products.db"),
  CACHE_TTL: "1h",
  CACHE_TIMEOUT: "10s",
  LOG_LEVEL: "warn"
})
delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT

const load = (path) => import(join(dist, path))
const { Effect, Layer, ManagedRuntime } = await import("effect")
const { ProductService } = await load("ProductService.js")
const { CacheStats } = await load("Cache/Stats.js")
const Services = await load("Services.js")
const Tracing = await load("Tracing.js")
const Logging = await load("Logging.js")

// As main.ts composes it (Services.ts), without the HTTP server.
const layer = Services.Live.pipe(
  Layer.provide(Services.CacheLive),
  Layer.provide(Tracing.layer),
  Layer.provide(Logging.layer)
)
const runtime = ManagedRuntime.make(layer)
const service = await runtime.runPromise(ProductService)
const ids = 1000
for (let i = 1; i <= ids; i++) {
  await runtime.runPromise(service.create({ name: `Product ${i}`, description: "", price: 1, stock: 0, category: "x" }))
}
const update = (i) => service.update(1 + ((i * 7919) % ids), { stock: i % 10_000 })
const upTo = (n) => Array.from({ length: n }, (_, i) => i)
const sequential = (n) => Effect.forEach(upTo(n), update, { discard: true })
const concurrent = (n) => Effect.forEach(upTo(n), update, { concurrency: 50, discard: true })

/** CPU µs per update of `program` run over `n` updates. */
const cpuPer = async (program, n) => {
  const before = process.cpuUsage()
  await runtime.runPromise(program(n))
  const spent = process.cpuUsage(before)
  return Math.round(((spent.user + spent.system) / n) * 10) / 10
}

await cpuPer(concurrent, 3 * count) // warm-up: the JIT settles before anything is counted
if (flag === "--callgrind") {
  const control = (...args) => promisify(execFile)("callgrind_control", [...args, String(process.pid)])
  await control("-i", "on")
  await runtime.runPromise(sequential(count))
  await control("-i", "off")
  await control("-d")
  console.log(JSON.stringify({ dist: distArg, count }))
} else {
  const seq = await cpuPer(sequential, count)
  const conc = await cpuPer(concurrent, count)
  const { deletes, errors } = await runtime.runPromise(Effect.flatMap(CacheStats, (stats) => stats.snapshot))
  console.log(
    JSON.stringify({ dist: distArg, cpuMicrosPerUpdate: { sequential: seq, concurrent50: conc }, errors, deletes })
  )
}
await runtime.dispose()
redis.client.disconnect()
redis.child.kill("SIGTERM")
rmSync(tmp, { recursive: true, force: true })
