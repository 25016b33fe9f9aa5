// The service composed in this process as main.ts composes it (Services.ts), without the HTTP server: on a private
// redis-server and a fresh SQLite file seeded with 1,000 products, tracing off. For the cost scripts (writeCost.mjs,
// readCost.mjs), which count the process's own CPU below HTTP.
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { benchDir } from "./process.mjs"
import { startRedis } from "./servers.mjs"

/** The build in `distArg` (a folder beside bench/), started; `stop` ends it and removes its files. */
export const startInProcess = async (distArg, { prefix = "product:" } = {}) => {
  const dist = resolve(benchDir, "..", distArg)
  const tmp = mkdtempSync(join(tmpdir(), "in-process-"))
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
  const layer = Services.Live.pipe(
    Layer.provide(Services.CacheLive),
    Layer.provide(Tracing.layer),
    Layer.provide(Logging.layer)
  )
  const runtime = ManagedRuntime.make(layer)
  const service = await runtime.runPromise(ProductService)
  const ids = 1000
  for (let i = 1; i <= ids; i++) {
    await runtime.runPromise(
      service.create({ name: `Product ${i}`, description: "", price: 1, stock: 0, category: "x" })
    )
  }
  const stop = async () => {
    await runtime.dispose()
    redis.client.disconnect()
    redis.child.kill("SIGTERM")
    rmSync(tmp, { recursive: true, force: true })
  }
  return { runtime, service, redis, ids, load, stop }
}
