// What a batch of reads costs below HTTP: `node bench/readCost.mjs [dist] [batches] [misses] [size]`, after
// `npm run build` (or with an earlier commit's build folder, for an A/B).
//
// Runs ProductService.getMany in this process, as the service composes it (Redis behind the circuit breaker, SQLite,
// tracing off), on a private redis-server and a fresh SQLite file seeded with 1,000 products: `batches` batches of
// `size` reads by id one after the other, the first `misses` of each made misses beforehand (their entry and shadow
// deleted, one DEL), and prints the process's CPU time per batch, and that of a bare DEL round trip to subtract.
// The mixed load's cost is mostly here: a batch of hits with one miss among them. Alternate builds, compare medians.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { startRedis } from "./lib/servers.mjs"

const [distArg = "dist", batchesArg = "3000", missesArg = "1", sizeArg = "15"] = process.argv.slice(2)
const dist = resolve(import.meta.dirname, "..", distArg)
const [batches, misses, size] = [batchesArg, missesArg, sizeArg].map(Number)
const prefix = "readcost:"
const tmp = mkdtempSync(join(tmpdir(), "read-cost-"))
const redis = await startRedis({ taken: new Set(), tmp })
Object.assign(process.env, {
  NODE_ENV: "production",
  REDIS_URL: redis.url,
  DB_PATH: join(tmp, "products.db"),
  CACHE_TTL: "1h",
  CACHE_TIMEOUT: "10s",
  CACHE_PREFIX: prefix,
  LOG_LEVEL: "warn"
})
delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT

const load = (path) => import(join(dist, path))
const { Layer, ManagedRuntime } = await import("effect")
const { ProductService } = await load("ProductService.js")
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

/** Batch `k`: its misses made, then its reads served together, resolved once every one is answered. */
const batch = (k) =>
  /** @type {Promise<void>} */ (
    new Promise((done) => {
      const reads = Array.from({ length: size }, (_, j) => ({
        _tag: "Product",
        id: 1 + (((k * size + j) * 7919) % ids)
      }))
      let left = reads.length
      const answered = () => --left === 0 && done()
      const serve = () =>
        runtime.runCallback(
          service.getMany(reads, (_, answer) =>
            answer._tag === "Success" ? answered() : runtime.runCallback(answer, { onExit: answered })
          )
        )
      const made = reads.slice(0, misses).flatMap(({ id }) => [`${prefix}id:${id}`, `${prefix}shadow:id:${id}`])
      if (made.length === 0) serve()
      else redis.client.del(...made).then(serve)
    })
  )

/** CPU µs per batch of `run`. */
const cpuPer = async (run) => {
  const before = process.cpuUsage()
  for (let k = 0; k < batches; k++) await run(k)
  const spent = process.cpuUsage(before)
  return Math.round((spent.user + spent.system) / batches)
}

await cpuPer(batch) // warm-up: every entry filled, and the JIT settled, before anything is counted
const delRoundTrip = await cpuPer((k) => redis.client.del(`${prefix}none:${k}`, `${prefix}none:${k}:shadow`))
const perBatch = await cpuPer(batch)
console.log(JSON.stringify({ dist: distArg, size, misses, cpuMicrosPerBatch: perBatch, delRoundTrip }))
await runtime.dispose()
redis.client.disconnect()
redis.child.kill("SIGTERM")
rmSync(tmp, { recursive: true, force: true })
