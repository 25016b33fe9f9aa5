import { describe, expect, it } from "@effect/vitest"
import { Context, Data, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import type { Slot } from "../src/Cache.js"
import * as Invalidations from "../src/Cache/Invalidations.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import type { ReadItem, Served } from "../src/Cache/ReadThrough.js"
import { ReadThrough } from "../src/Cache/ReadThrough.js"
import * as RefreshAhead from "../src/Cache/RefreshAhead.js"
import { CacheStats } from "../src/Cache/Stats.js"
import { coalesced, config, counts, waitUntil } from "./support/ProductServiceHarness.js"

// The engine over generic slots: a made-up entity, a city's forecast, served by it in a few lines, proves that
// nothing in it knows products. Its counting and its races are ProductService*.test.ts's subject.

class UnknownCity extends Data.TaggedError("UnknownCity")<{ readonly city: string }> {}

const slotOf = (city: string): Slot => ({
  key: `forecast:${city}`,
  guard: `guard:forecast:${city}`,
  lease: `lease:forecast:${city}`,
  shadow: `shadow:forecast:${city}`,
  absent: `absent:forecast:${city}`
})

/** The whole of a forecast service: which slot, how to load one city, how to load many, what "unknown" answers. */
const makeForecasts = (engine: ReadThrough, table: Map<string, string>) => {
  const loads: Array<ReadonlyArray<string>> = []
  let hold: Effect.Effect<void> = Effect.void
  const find = (cities: ReadonlyArray<string>) =>
    Effect.zipRight(
      Effect.sync(() => loads.push(cities)),
      Effect.suspend(() =>
        Effect.as(
          hold,
          cities.map((city) => Option.fromNullable(table.get(city)))
        )
      )
    )
  const itemOf = (city: string): ReadItem<never, UnknownCity> & { readonly city: string } => ({
    city,
    slot: slotOf(city),
    load: Effect.map(find([city]), (found) => found[0]!),
    absent: () => Effect.fail(new UnknownCity({ city }))
  })
  return {
    loads,
    holdLoads: (until: Effect.Effect<void>) => Effect.sync(() => void (hold = until)),
    get: (city: string) => engine.read(itemOf(city)),
    getMany: (
      cities: ReadonlyArray<string>,
      answer: (at: number, answer: Effect.Effect<Served, UnknownCity>) => void
    ) => engine.readMany(cities.map(itemOf), { loadMany: (items) => find(items.map(({ city }) => city)), answer }),
    forget: (city: string) => engine.invalidate(engine.entry(slotOf(city)))
  }
}

const setup = Effect.gen(function* () {
  const context = yield* Layer.build(
    ReadThrough.Default.pipe(
      Layer.provideMerge(Layer.mergeAll(MemoryCache.layer, CacheStats.Default, Invalidations.layerLocal)),
      Layer.provide(config)
    )
  )
  const table = new Map([
    ["paris", `{"high":21}`],
    ["oslo", `{"high":9}`],
    ["lima", `{"high":24}`]
  ])
  const stats = Context.get(context, CacheStats)
  return { forecasts: makeForecasts(Context.get(context, ReadThrough), table), table, stats: () => stats.snapshot }
})

describe("ReadThrough over another entity", () => {
  it.scoped(
    "a miss loads and fills, the next read hits, an unknown key is remembered, a write's invalidation reloads",
    () =>
      Effect.gen(function* () {
        const { forecasts, stats, table } = yield* setup
        expect(yield* forecasts.get("paris")).toEqual({ json: `{"high":21}`, fromCache: false })
        expect(yield* forecasts.get("paris")).toEqual({ json: `{"high":21}`, fromCache: true })
        const unknown = yield* Effect.exit(forecasts.get("atlantis"))
        expect(yield* Effect.exit(forecasts.get("atlantis"))).toEqual(unknown)
        expect(unknown).toEqual(Exit.fail(new UnknownCity({ city: "atlantis" })))
        expect(forecasts.loads).toEqual([["paris"], ["atlantis"]])

        table.set("paris", `{"high":30}`)
        yield* forecasts.forget("paris")
        expect(yield* forecasts.get("paris")).toEqual({ json: `{"high":30}`, fromCache: false })
        expect(counts(yield* stats())).toEqual({ hits: 2, misses: 3, sets: 2, deletes: 1, errors: 0 })
      })
  )

  it.scoped("readers that miss one key together share one load", () =>
    Effect.gen(function* () {
      const { forecasts } = yield* setup
      const release = yield* Deferred.make<void>()
      yield* forecasts.holdLoads(Deferred.await(release))
      const before = yield* coalesced
      const readers = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 10 }, () => forecasts.get("oslo")),
          { concurrency: "unbounded" }
        )
      )
      yield* waitUntil(Effect.map(coalesced, (count) => count - before === 9))
      yield* Deferred.succeed(release, undefined)
      const answers = yield* Fiber.join(readers)
      expect(new Set(answers.map(({ json }) => json))).toEqual(new Set([`{"high":9}`]))
      expect(forecasts.loads).toEqual([["oslo"]])
    })
  )

  it.scoped(
    "readMany: one load for the misses it leases; hits and loaded values answered settled, repeats as their first",
    () =>
      Effect.gen(function* () {
        const { forecasts, stats } = yield* setup
        yield* forecasts.get("paris")
        const cities = ["paris", "oslo", "lima", "oslo", "atlantis"]
        const answers = new Array<Effect.Effect<Served, UnknownCity>>(cities.length)
        yield* forecasts.getMany(cities, (at, answer) => void (answers[at] = answer))

        const settled = answers.map((answer) => Exit.isExit(answer) && Exit.isSuccess(answer))
        expect(settled).toEqual([true, true, true, true, false])
        expect(yield* Effect.all(answers.slice(0, 4))).toEqual([
          { json: `{"high":21}`, fromCache: true },
          { json: `{"high":9}`, fromCache: false },
          { json: `{"high":24}`, fromCache: false },
          { json: `{"high":9}`, fromCache: false }
        ])
        expect(yield* Effect.exit(answers[4]!)).toEqual(Exit.fail(new UnknownCity({ city: "atlantis" })))
        expect(forecasts.loads).toEqual([["paris"], ["oslo", "lima", "atlantis"]])
        // oslo is read twice, so it counts two misses, as two reads alone would.
        expect(counts(yield* stats())).toEqual({ hits: 1, misses: 1 + 4, sets: 1 + 2, deletes: 0, errors: 0 })
      })
  )
})

describe("RefreshAhead's draw (XFetch)", () => {
  const drawing = (value: number) => {
    const draws = { count: 0 }
    return { draws, random: () => (draws.count++, value) }
  }

  it("is due with probability exp(-ttl / (beta * delta)): due for a draw below it, not above", () => {
    // 2 ms left of an entry whose load took 1 ms: exp(-2) of the draws are due.
    const hit = { ttl: 2, load: 1_000 }
    const threshold = Math.exp(-2 / RefreshAhead.beta)
    expect(RefreshAhead.isDue(hit, () => threshold * 0.99)).toBe(true)
    expect(RefreshAhead.isDue(hit, () => threshold * 1.01)).toBe(false)
    // An expired entry (no time left) is always due; a long load makes a far expiry close.
    expect(RefreshAhead.isDue({ ttl: 0, load: 1_000 }, () => 0.999)).toBe(true)
    expect(RefreshAhead.isDue({ ttl: 2_000, load: 1_000_000 }, () => 0.1)).toBe(true)
  })

  it("draws no number at all far from expiry, nor for an entry whose load time is unknown", () => {
    const { draws, random } = drawing(1e-300)
    // 40 loads from expiry is the reach: the chance beyond it is below e^-40.
    expect(RefreshAhead.isDue({ ttl: 41, load: 1_000 }, random)).toBe(false)
    expect(RefreshAhead.isDue({ ttl: 60_000, load: 0 }, random)).toBe(false)
    expect(draws.count).toBe(0)
    expect(RefreshAhead.isDue({ ttl: 39, load: 1_000 }, random)).toBe(true)
    expect(draws.count).toBe(1)
  })
})
