import { describe, expect, it } from "@effect/vitest"

// The bench's correctness checks (bench/lib/checks.mjs): a run whose figures show a fault must fail, smoke or not.

// The bench is checked JavaScript with a tsconfig of its own (bench/tsconfig.json); this project types what it uses.
const {
  judge
}: {
  readonly judge: (
    rows: ReadonlyArray<object>,
    stampedes: ReadonlyArray<object>,
    settings: object
  ) => {
    readonly failures: ReadonlyArray<string>
  }
} = await import("../bench/lib/checks.mjs" as string)

/** One wrk scenario's row as bench/lib/scenarios.mjs sums it, with clean figures unless `fields` say otherwise. */
const row = (fields: Record<string, number | string>) => ({
  target: "service",
  instance: "service",
  scenario: "hit-id",
  conns: 50,
  non2xx: 0,
  socket_errors: 0,
  hit_rate: 1,
  reads_counted: 10_000,
  cache_errors: 0,
  ...fields
})

const failuresOf = (fields: Record<string, number | string>) => judge([row(fields)], [], { seconds: 1 }).failures

describe("the bench's checks of an all-hits scenario", () => {
  it("all reads hit: nothing fails", () => {
    expect(failuresOf({})).toEqual([])
    expect(failuresOf({ scenario: "list-hit" })).toEqual([])
  })

  it("reads answered from the database because Redis failed fail the run, though the hit rate leaves them out", () => {
    const failures = failuresOf({ hit_rate: 1, cache_errors: 5_000 })
    expect(failures).toHaveLength(1)
    expect(failures[0]).toMatch(/hit-id c50: 0\.5000 of the reads served from the cache .*5000 cache errors/)
    // One in ten thousand is within the check's slack, as a miss would be.
    expect(failuresOf({ cache_errors: 1 })).toEqual([])
  })

  it("misses in an all-hits scenario fail the run", () => {
    expect(failuresOf({ scenario: "list-hit", hit_rate: 0.99 })).toHaveLength(1)
  })
})
