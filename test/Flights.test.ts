import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Option, TestClock } from "effect"
import type { Slot } from "../src/Cache.js"
import type { Loaded } from "../src/Cache/Fills.js"
import * as Flights from "../src/Cache/Flights.js"
import * as MemoryCache from "../src/Cache/Memory.js"
import { miss } from "./support/CacheBackends.js"
import { waitUntil } from "./support/ProductServiceHarness.js"

// Single flight's edge: the fill of a load is done in the cache before its flight lands in this process, and a miss
// in between can take the lease again under the same stamp.

const slot: Slot = { key: "k", guard: "g", lease: "l", shadow: "s" }

describe("Flights", () => {
  it.effect("a lease taken while a load of the same stamp is landing is given back, not left to expire", () =>
    Effect.gen(function* () {
      const cache = yield* MemoryCache.make
      // Every fill is applied at once, then waits for the gate: the flight lands only after the gate opens.
      const gate = yield* Deferred.make<void>()
      const fill = ({ lease, slot, stamp, value }: Loaded, load: number) =>
        Effect.zipRight(
          Effect.ignore(
            cache.fill(slot, { stamp, lease, value: Option.getOrNull(value), ttl: Duration.millis(1), load })
          ),
          Deferred.await(gate)
        )
      const flights = Flights.make({ cache, fill, clock: { unsafeCurrentTimeNanos: () => 0n } })

      const first = miss(yield* cache.lookup(slot))
      const loading = yield* Effect.fork(flights.load(slot, first.stamp, first.lease, Effect.succeed(Option.some("v"))))
      yield* waitUntil(Effect.map(Effect.orDie(cache.lookup(slot)), (found) => found._tag === "Hit"))
      // The entry expires; its guard does not, so the next miss sees the same stamp and the lease the fill freed.
      yield* TestClock.adjust(Duration.millis(2))
      const second = miss(yield* cache.lookup(slot))
      expect({ stamp: second.stamp, leased: second.lease !== null }).toEqual({ stamp: first.stamp, leased: true })
      const joining = yield* Effect.fork(
        flights.load(slot, second.stamp, second.lease, Effect.dieMessage("the running load is joined, not repeated"))
      )
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(loading)).toEqual(Option.some("v"))
      expect(yield* Fiber.join(joining)).toEqual(Option.some("v"))
      // The next miss may load at once: no lease is held for a fill that will not come.
      yield* TestClock.adjust(Duration.millis(2))
      expect(miss(yield* cache.lookup(slot)).lease).not.toBeNull()
    })
  )
})
