// What a batch of reads costs below HTTP: `node bench/readCost.mjs [dist] [batches] [misses] [size]`, after
// `npm run build` (or with an earlier commit's build folder, for an A/B).
//
// Runs ProductService.getMany in this process, as the service composes it (Redis behind the circuit breaker, SQLite,
// tracing off), on a private redis-server and a fresh SQLite file seeded with 1,000 products: `batches` batches of
// `size` reads by id one after the other, the first `misses` of each made misses beforehand (their entry and shadow
// deleted, one DEL), and prints the process's CPU time per batch, and that of a bare DEL round trip to subtract.
// The mixed load's cost is mostly here: a batch of hits with one miss among them. Alternate builds, compare medians.
import { startInProcess } from "./lib/inProcess.mjs"

const [distArg = "dist", batchesArg = "3000", missesArg = "1", sizeArg = "15"] = process.argv.slice(2)
const [batches, misses, size] = [batchesArg, missesArg, sizeArg].map(Number)
const prefix = "readcost:"
const { runtime, service, redis, ids, stop } = await startInProcess(distArg, { prefix })

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
await stop()
