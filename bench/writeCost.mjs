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
import { promisify } from "node:util"
import { startInProcess } from "./lib/inProcess.mjs"

const [distArg = "dist", countArg = "3000", flag] = process.argv.slice(2)
const count = Number(countArg)
const { runtime, service, ids, load, stop } = await startInProcess(distArg)
const { Effect } = await import("effect")
const { CacheStats } = await load("Cache/Stats.js")
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
await stop()
