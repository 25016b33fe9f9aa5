import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect } from "effect"
import type { Slot } from "../src/Cache.js"
import * as CacheKeys from "../src/Cache/Keys.js"
import { memory, redis, keys, bounded, product, ttl, miss, put } from "./support/CacheBackends.js"

// One contract, every backend: the service relies on these semantics, not on Redis or a Map.

for (const backend of [memory, redis]) {
  describe(`Cache contract: ${backend.name}`, () => {
    it.scoped("a miss hands out the guard's stamp; a fill with it stores the entry; the next lookup hits", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        expect(yield* put(cache, product(1), "v1")).toBe(true)
        expect(yield* cache.lookup(product(1))).toMatchObject({ _tag: "Hit", value: "v1" })
      })
    )

    it.scoped("lookupMany and fillMany do for each slot what lookup and fill do alone, in one step", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const page = keys.page(0, 20)
        yield* put(cache, product(1), "v1")
        yield* put(cache, product(2), null) // remembered absent
        const held = miss(yield* cache.lookup(product(3))) // another reader holds 3's lease
        expect(held.lease).not.toBeNull()
        const found = yield* cache.lookupMany([product(1), product(2), product(3), product(4), page])
        expect(found.slice(0, 2)).toMatchObject([{ _tag: "Hit", value: "v1" }, { _tag: "Absent" }])
        const [three, four, onPage] = found.slice(2).map(miss)
        expect({ ...three, lease: three!.lease === null }).toEqual({ _tag: "Miss", stamp: held.stamp, lease: true })
        expect(four!.lease).not.toBeNull()
        expect(onPage!.lease).not.toBeNull()

        // A write moves 4's guard before the fills land: its fill is refused, the others stored, leases given back.
        yield* cache.invalidate([product(4).key], [product(4).guard])
        const stored = yield* cache.fillMany([
          [product(4), { stamp: four!.stamp, lease: four!.lease, value: "old", ttl }],
          [page, { stamp: onPage!.stamp, lease: onPage!.lease, value: "page", ttl }],
          [product(5), { stamp: "never stamped", lease: null, value: null, ttl }]
        ])
        expect(stored).toEqual([false, true, false])
        const after = yield* cache.lookupMany([product(4), page, product(5)])
        expect(after[0]).toMatchObject({ _tag: "Miss" })
        expect(miss(after[0]!).lease).not.toBeNull()
        expect(after[1]).toMatchObject({ _tag: "Hit", value: "page" })
        expect(after[2]).toMatchObject({ _tag: "Miss" })
        // The page was named by its index in the same step: a write through the index removes it.
        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(1)
        expect(yield* cache.lookupMany([])).toEqual([])
        expect(yield* cache.fillMany([])).toEqual([])
      })
    )

    it.scoped("the first miss takes the fill lease; later misses share the stamp but not the lease", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const first = miss(yield* cache.lookup(product(1)))
        const second = miss(yield* cache.lookup(product(1)))
        expect(first.lease).not.toBeNull()
        expect(second.lease).toBeNull()
        expect(second.stamp).toBe(first.stamp)
        // A reader without the lease may still fill with the same stamp (it waited, then loaded itself).
        expect(yield* cache.fill(product(1), { stamp: second.stamp, lease: null, value: "v", ttl })).toBe(true)
      })
    )

    it.scoped("a fill gives the lease back; an abandoned lease frees itself", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const first = miss(yield* cache.lookup(product(1)))
        yield* cache.fill(product(1), { stamp: "stale", lease: first.lease, value: "v", ttl })
        expect(miss(yield* cache.lookup(product(1))).lease).not.toBeNull()
        expect(miss(yield* cache.lookup(product(1))).lease).toBeNull()
        yield* backend.elapse(1_100)
        expect(miss(yield* cache.lookup(product(1))).lease).not.toBeNull()
      })
    )

    it.scoped("a lease taken under a stamp that a write has since moved is taken over, not waited for", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const holder = miss(yield* cache.lookup(product(1)))
        expect(holder.lease).not.toBeNull()
        yield* cache.invalidate([product(1).key], [product(1).guard]) // the holder's fill is void from here on
        const next = miss(yield* cache.lookup(product(1)))
        expect(next.stamp).not.toBe(holder.stamp)
        expect(next.lease).not.toBeNull()
        // The old holder's late fill neither stores nor frees the new lease.
        expect(yield* cache.fill(product(1), { ...holder, value: "old", ttl })).toBe(false)
        expect(miss(yield* cache.lookup(product(1))).lease).toBeNull()
      })
    )

    it.scoped("a fill with a stamp the guard does not hold is refused and stores nothing", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* cache.lookup(product(1))
        expect(yield* cache.fill(product(1), { stamp: "forged", lease: null, value: "v1", ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidate between a miss and its fill voids the fill (the read-write race)", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const before = miss(yield* cache.lookup(product(1)))
        yield* cache.invalidate([product(1).key], [product(1).guard])
        expect(yield* cache.fill(product(1), { ...before, value: "old", ttl })).toBe(false)
        const after = miss(yield* cache.lookup(product(1)))
        expect(after.stamp).not.toBe(before.stamp)
      })
    )

    it.scoped("a remembered absence answers Absent until invalidated, and is voided by a write like a value", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        expect(yield* put(cache, product(1), null)).toBe(true)
        expect(yield* cache.lookup(product(1))).toEqual({ _tag: "Absent" })
        yield* cache.invalidate([product(1).key, product(1).absent!], [product(1).guard])
        const next = miss(yield* cache.lookup(product(1)))
        yield* cache.invalidate([product(1).key, product(1).absent!], [product(1).guard])
        expect(yield* cache.fill(product(1), { ...next, value: null, ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidate deletes the keys and counts only those that existed", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* put(cache, product(1), "1")
        yield* put(cache, product(2), "2")
        const removed = yield* cache.invalidate([product(1).key, product(2).key, product(3).key], [product(1).guard])
        expect(removed).toBe(2)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
        expect((yield* cache.lookup(product(2)))._tag).toBe("Miss")
      })
    )

    it.scoped("invalidateIndexed removes every page the index names, leaves the rest, and moves the guard", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const long = Duration.seconds(30)
        for (let offset = 0; offset < 25 * 20; offset += 20) yield* put(cache, keys.page(offset, 20), "page", long)
        yield* put(cache, product(7), "seven", long)
        const other = CacheKeys.make("other:").page(0, 20)
        yield* put(cache, other, "other", long)
        const late = miss(yield* cache.lookup(keys.page(999, 20)))

        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(25)

        expect((yield* cache.lookup(keys.page(0, 20)))._tag).toBe("Miss")
        expect(yield* cache.lookup(product(7))).toMatchObject({ _tag: "Hit", value: "seven" })
        expect(yield* cache.lookup(other)).toMatchObject({ _tag: "Hit", value: "other" })
        expect(yield* cache.fill(keys.page(999, 20), { ...late, value: "old", ttl })).toBe(false)
        // The index went with its pages: a second invalidation finds nothing.
        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(0)
      })
    )

    it.scoped("invalidateMany applies a product's removal and the index's in one step, each counted alone", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const long = Duration.seconds(30)
        yield* put(cache, product(1), "one", long)
        yield* put(cache, product(2), null, long) // remembered absent
        yield* put(cache, product(3), "three", long)
        yield* put(cache, keys.page(0, 20), "page", long)
        yield* put(cache, keys.page(20, 20), "page 2", long)
        const lateProduct = miss(yield* cache.lookup(product(4)))
        const latePage = miss(yield* cache.lookup(keys.page(40, 20)))

        const counts = yield* cache.invalidateMany([
          { _tag: "Keys", keys: [product(1).key, product(2).absent!], guards: [product(1).guard, product(4).guard] },
          { _tag: "Indexed", index: keys.listIndex, guard: keys.listGuard }
        ])

        expect(counts).toEqual([2, 2])
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
        expect((yield* cache.lookup(product(2)))._tag).toBe("Miss")
        expect((yield* cache.lookup(keys.page(0, 20)))._tag).toBe("Miss")
        expect(yield* cache.lookup(product(3))).toMatchObject({ _tag: "Hit", value: "three" })
        // Both guards moved: fills of lookups made before the removal are refused.
        expect(yield* cache.fill(product(4), { ...lateProduct, value: "old", ttl })).toBe(false)
        expect(yield* cache.fill(keys.page(40, 20), { ...latePage, value: "old", ttl })).toBe(false)
        expect(yield* cache.invalidateMany([])).toEqual([])
      })
    )

    it.scoped("a full index evicts the page that expires first; refilling a page it names evicts nothing", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const page = (offset: number) => bounded.page(offset, 10)
        const tags = Effect.forEach([0, 1, 2, 3, 4], (offset) => Effect.map(cache.lookup(page(offset)), (_) => _._tag))
        // Each page lives a second longer than the one before, so the first filled is the first to expire.
        for (let offset = 0; offset < 5; offset++) {
          expect(yield* put(cache, page(offset), `page ${offset}`, Duration.seconds(10 + offset))).toBe(true)
        }
        expect(yield* tags).toEqual(["Miss", "Miss", "Hit", "Hit", "Hit"])
        expect(yield* cache.lookup(page(3))).toMatchObject({ _tag: "Hit", value: "page 3" })

        const { stamp } = miss(yield* cache.lookup(page(0)))
        const again = { stamp, lease: null, value: "page 3 again", ttl: Duration.seconds(20) }
        expect(yield* cache.fill(page(3), again)).toBe(true)
        expect(yield* tags).toEqual(["Miss", "Miss", "Hit", "Hit", "Hit"])
        expect(yield* cache.lookup(page(3))).toMatchObject({ _tag: "Hit", value: "page 3 again" })
        expect(yield* cache.invalidateIndexed(bounded.listIndex, bounded.listGuard)).toBe(3)
      })
    )

    // Checked against the backend's clock, read before the fill and after each lookup, so a slow machine cannot fail
    // it: a miss that answered sooner than the ttl after the fill began is an early expiry, and a lookup that
    // answered within the ttl of that moment must have hit.
    it.scoped("an entry lives for its ttl, then expires", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const lifetime = 1_000
        const started = yield* backend.now
        yield* put(cache, product(1), "v1", Duration.millis(lifetime))
        const first = yield* cache.lookup(product(1))
        if ((yield* backend.now) - started < lifetime) expect(first._tag).toBe("Hit")
        let found = first
        for (let step = 0; step < 100 && found._tag === "Hit"; step++) {
          yield* backend.elapse(50)
          found = yield* cache.lookup(product(1))
        }
        expect(found._tag).toBe("Miss")
        expect((yield* backend.now) - started).toBeGreaterThanOrEqual(lifetime)
      })
    )

    it.scoped("a hit says how long the entry has left and how long its load took", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const { lease, stamp } = miss(yield* cache.lookup(product(1)))
        yield* cache.fill(product(1), { stamp, lease, value: "v", ttl: Duration.seconds(10), load: 1234 })
        const found = yield* cache.lookup(product(1))
        if (found._tag !== "Hit") throw new Error("expected a hit")
        expect(found.load).toBe(1234)
        expect(found.ttl).toBeGreaterThan(9_000)
        expect(found.ttl).toBeLessThanOrEqual(10_000)
      })
    )

    it.scoped("with a grace period the fallback copy outlives its entry, by that period and no longer", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const { lease, stamp } = miss(yield* cache.lookup(product(1)))
        const grace = Duration.millis(1_500)
        yield* cache.fill(product(1), { stamp, lease, value: "v1", ttl: Duration.millis(300), grace })
        // Only after the entry expired is the copy the only place the value lives.
        yield* backend.elapse(600)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
        const copy = yield* cache.stale(product(1))
        expect(copy?.value).toBe("v1")
        expect(copy!.age).toBeGreaterThanOrEqual(600)
        expect(copy!.age).toBeLessThan(1_800)
        yield* backend.elapse(1_500)
        expect(yield* cache.stale(product(1))).toBeNull()
        // Without a grace period there is no copy at all.
        yield* put(cache, product(2), "v2")
        expect(yield* cache.stale(product(2))).toBeNull()
      })
    )

    it.scoped("a write's invalidation removes the fallback copies too, by id and every page the index names", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        const grace = Duration.seconds(60)
        const fillWithGrace = (slot: Slot, value: string) =>
          Effect.flatMap(cache.lookup(slot), (found) =>
            cache.fill(slot, { ...miss(found), value, ttl: Duration.seconds(10), grace })
          )
        yield* fillWithGrace(product(1), "one")
        yield* fillWithGrace(keys.page(0, 20), "page")
        yield* fillWithGrace(keys.page(20, 20), "page 2")
        expect((yield* cache.stale(product(1)))?.value).toBe("one")
        expect((yield* cache.stale(keys.page(0, 20)))?.value).toBe("page")
        // The product's shadow is bookkeeping: removing it is not counted as a delete.
        expect(yield* cache.invalidate([product(1).key], [product(1).guard], [product(1).shadow])).toBe(1)
        expect(yield* cache.stale(product(1))).toBeNull()
        expect(yield* cache.invalidateIndexed(keys.listIndex, keys.listGuard)).toBe(2)
        expect(yield* cache.stale(keys.page(0, 20))).toBeNull()
        expect(yield* cache.stale(keys.page(20, 20))).toBeNull()
        // A page evicted from a full index takes its copy with it.
        const page = (offset: number) => bounded.page(offset, 10)
        for (let offset = 0; offset < 4; offset++) {
          const found = miss(yield* cache.lookup(page(offset)))
          yield* cache.fill(page(offset), { ...found, value: `p${offset}`, ttl: Duration.seconds(10 + offset), grace })
        }
        expect(yield* cache.stale(page(0))).toBeNull()
        expect((yield* cache.stale(page(1)))?.value).toBe("p1")
      })
    )

    it.scoped("a claim takes the lease as a miss would: one claimant at a time, and a write voids its fill", () =>
      Effect.gen(function* () {
        const cache = yield* backend.cache
        yield* put(cache, product(1), "old")
        const first = yield* cache.claim(product(1))
        expect(first.lease).not.toBeNull()
        expect((yield* cache.claim(product(1))).lease).toBeNull()
        yield* cache.invalidate([product(1).key], [product(1).guard], [product(1).shadow])
        expect(yield* cache.fill(product(1), { ...first, value: "late", ttl })).toBe(false)
        expect((yield* cache.lookup(product(1)))._tag).toBe("Miss")
      })
    )

    it.scoped("ping succeeds while the cache answers", () => Effect.flatMap(backend.cache, (cache) => cache.ping))
  })
}
