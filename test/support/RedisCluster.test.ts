import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import * as RedisCluster from "./RedisCluster.js"

// One cluster per test (three processes and a `redis-cli --cluster create`, a second or two on two cores).

const keys = Array.from({ length: 20 }, (_, i) => `product:{id:${i + 1}}`)

/** The error a command ends with, as text ("" when it succeeded). */
const errorOf = <A>(effect: Effect.Effect<A>) =>
  Effect.map(Effect.exit(effect), (exit) => (Exit.isSuccess(exit) ? "" : Cause.pretty(exit.cause)))

describe("RedisCluster", () => {
  it.scopedLive("forms with three masters that share the hash-tagged product keys", () =>
    Effect.gen(function* () {
      const cluster = yield* RedisCluster.make()
      expect(cluster.nodes).toHaveLength(3)
      const owners = yield* Effect.forEach(keys, cluster.masterOf)
      expect(new Set(owners).size).toBeGreaterThanOrEqual(2)
      for (const [i, key] of keys.entries()) {
        expect(yield* cluster.command(owners[i]!, "SET", key, "v")).toBe("OK")
        expect(yield* cluster.command(owners[i]!, "GET", key)).toBe("v")
      }
      // Keys of one tag share a slot; a node that does not own it redirects.
      expect(yield* cluster.masterOf("product:{id:1}:lease")).toBe(owners[0])
      const other = (owners[0]! + 1) % 3
      expect(yield* errorOf(cluster.command(other, "GET", keys[0]!))).toMatch(/MOVED \d+ 127\.0\.0\.1:\d+/)
    })
  )

  it.scopedLive(
    "a killed master's keys fail while the others answer; started again, it serves its slots, empty",
    () =>
      Effect.gen(function* () {
        const cluster = yield* RedisCluster.make()
        const owners = yield* Effect.forEach(keys, cluster.masterOf)
        for (const [i, key] of keys.entries()) yield* cluster.command(owners[i]!, "SET", key, "v")
        const victim = owners[0]!
        const survivorKey = keys.find((_, i) => owners[i] !== victim)!
        const survivor = owners[keys.indexOf(survivorKey)]!

        yield* cluster.kill(victim)
        expect(yield* errorOf(cluster.command(victim, "GET", keys[0]!))).toMatch(/ECONNREFUSED|Connection is closed/)
        yield* cluster.awaitFailed(victim)
        // Still redirected to the dead owner (no replica to take over): a client then meets a refused connection.
        expect(yield* errorOf(cluster.command(survivor, "GET", keys[0]!))).toMatch(/MOVED|CLUSTERDOWN/)
        expect(yield* cluster.command(survivor, "GET", survivorKey)).toBe("v")
        expect(yield* cluster.command(survivor, "CLUSTER", "INFO")).toMatch(/cluster_state:ok/)

        yield* cluster.start(victim)
        expect(yield* cluster.masterOf(keys[0]!)).toBe(victim)
        expect(yield* cluster.command(victim, "GET", keys[0]!)).toBe(null)
        expect(yield* cluster.command(victim, "SET", keys[0]!, "again")).toBe("OK")
      }),
    40_000
  )

  it.scopedLive("with full coverage required, one lost master stops every node", () =>
    Effect.gen(function* () {
      const cluster = yield* RedisCluster.make({ requireFullCoverage: true })
      const owners = yield* Effect.forEach(keys, cluster.masterOf)
      const victim = owners[0]!
      const survivorKey = keys.find((_, i) => owners[i] !== victim)!
      const survivor = owners[keys.indexOf(survivorKey)]!
      yield* cluster.kill(victim)
      yield* cluster.awaitFailed(victim)
      expect(yield* errorOf(cluster.command(survivor, "GET", survivorKey))).toMatch(/CLUSTERDOWN/)
    })
  )
})
