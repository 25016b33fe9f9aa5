// The stampede scenario's rounds: a PUT makes an id cold, then 200 reads of it arrive at once. The service must load
// it from the database once; the baseline, which has no single flight, shows what that saves.
import { expectOk, scrapeCounter } from "./http.mjs"
import { pad } from "./report.mjs"
import { readStats, resetStats, stampede } from "./scenarios.mjs"
import { productCount, stampedeReaders } from "./settings.mjs"
import { fireAtOnce } from "../stampede.mjs"

const findByIdLoads = (port) => scrapeCounter(port, "db_queries_total", { query: "findById" })

/**
 * Stampede: a PUT makes the id cold (and moves its guard), then 200 reads at once. The service's database loads are
 * read off its /metrics before and after; the baseline counts its own.
 */
export const runStampedes = async (targets, rounds) => {
  const stampedes = []
  for (let round = 1; round <= rounds; round++) {
    for (const target of stampede.targets.map((key) => targets[key])) {
      const id = 1 + ((round * 211 + (target.key === "service" ? 0 : 101)) % productCount)
      await expectOk(target.port, "PUT", `/api/v1/products/${id}`, { stock: 100 + round })
      await resetStats(target)
      const metered = target.key === "service"
      const loadsBefore = metered ? await findByIdLoads(target.port) : 0
      const fired = await fireAtOnce({ port: target.port, path: `/api/v1/products/${id}`, readers: stampedeReaders })
      const cache = await readStats(target)
      const loads = metered ? (await findByIdLoads(target.port)) - loadsBefore : cache.db_loads
      stampedes.push({
        target: target.display,
        round,
        id,
        ...fired,
        misses: cache.misses,
        hits: cache.hits,
        sets: cache.sets,
        cache_errors: cache.errors,
        db_loads: loads,
        db_loads_from: metered ? "/metrics db_queries_total{query=findById}" : "its own count"
      })
    }
  }
  return stampedes
}

export const printStampedes = (stampedes) => {
  console.log("")
  console.log(`stampede: ${stampedeReaders} simultaneous GETs of a freshly invalidated id`)
  for (const s of stampedes) {
    console.log(
      `  ${pad(s.target, 9)} round ${s.round} id ${pad(s.id, 4, true)}: X-Cache MISS ${s.x_cache.MISS ?? 0} HIT ${s.x_cache.HIT ?? 0}, ` +
        `stats misses ${s.misses} hits ${s.hits} sets ${s.sets} errors ${s.cache_errors}, ` +
        `db loads ${s.db_loads} (${s.db_loads_from}), ${s.wall_ms} ms`
    )
  }
}
