import { Context, Data } from "effect"
import type { Duration, Effect } from "effect"

/** Every operation of the cache, as errors, spans and the `operation` label of the metrics name it. */
export type CacheOperation = "lookup" | "fill" | "invalidate" | "stale" | "claim" | "ping"

/**
 * A cache operation that could not be done: `failed` when the cache was asked and failed or timed out, `skipped`
 * when the open circuit refused it without asking (counted apart, so the metrics tell a sick cache from a shunned one).
 */
export class CacheError extends Data.TaggedError("CacheError")<{
  readonly op: CacheOperation
  readonly reason: "failed" | "skipped"
  readonly cause: unknown
}> {
  override get message() {
    return `cache ${this.op} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/**
 * A set naming every entry filled under it, so that one step removes them all: its cost follows the entries it
 * names, never the rest of the cache. It holds at most `capacity` entries; a fill into a full index evicts the entry
 * that would expire first.
 */
export interface Index {
  readonly key: string
  readonly capacity: number
  /** How the names of entries and of their shadows begin: a shadow's name is its entry's with the one swapped for the other. */
  readonly entries: string
  readonly shadows: string
}

/**
 * Where one cached answer lives. `key` holds the value; `guard` holds the stamp that fills must show (one guard per
 * product, one shared by all list pages); `lease` names the reader that loads it after a miss; `shadow` holds when
 * the value was loaded and how long that took (for refresh ahead) and, with a grace period, a fallback copy of it
 * that outlives the entry by that period; `absent`, where given, remembers that there is nothing to load; `index`,
 * where given, names the entry in the same atomic step as its fill, and an entry it does not name is never served
 * (nor is its fallback copy).
 */
export interface Slot {
  readonly key: string
  readonly guard: string
  readonly lease: string
  readonly shadow: string
  readonly absent?: string
  readonly index?: Index
}

/**
 * What a lookup found. A miss carries the stamp its guard held at that instant, which the fill must show, so a
 * write landing between this lookup and the fill voids the fill instead of being overwritten by it. `lease` is
 * this reader's token when it is the one to load; `null` when another reader (maybe in another process) holds it.
 */
export type Lookup =
  | {
      readonly _tag: "Hit"
      readonly value: string
      /** Milliseconds the entry has left to live. */
      readonly ttl: number
      /** Microseconds its load took when it was filled (0 when unknown): what refresh ahead weighs `ttl` against. */
      readonly load: number
    }
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Miss"; readonly stamp: string; readonly lease: string | null }

export interface Fill {
  readonly stamp: string
  /** The value to store, or `null` to remember under `slot.absent` that there is none. */
  readonly value: string | null
  readonly ttl: Duration.Duration
  /** The lease token to give back, if this reader held it. */
  readonly lease: string | null
  /** Microseconds the load of `value` took, kept in the shadow for refresh ahead. */
  readonly load?: number
  /** How long the shadow keeps a fallback copy of `value` after the entry expires; none when absent or zero. */
  readonly grace?: Duration.Duration
}

/**
 * What one write removes, as `invalidate` and `invalidateIndexed` take it: a slot's keys (moving its guards), or
 * every entry an index names (moving their guard). `invalidateMany` applies several in one step.
 */
export type Removal =
  | {
      readonly _tag: "Keys"
      readonly keys: ReadonlyArray<string>
      readonly guards: ReadonlyArray<string>
      readonly also?: ReadonlyArray<string>
    }
  | { readonly _tag: "Indexed"; readonly index: Index; readonly guard: string }

/** Which cache is in use, and for a cluster how many of its masters answered a ping just now. */
export interface CacheTopology {
  readonly kind: "memory" | "single" | "sentinel" | "cluster"
  readonly masters?: { readonly total: number; readonly answering: number }
}

/** A fallback copy found in a shadow, and how long ago (milliseconds) its value was loaded. */
export interface Stale {
  readonly value: string
  readonly age: number
}

/** A refresh's right to load and fill: the guard's stamp, and the lease if no other reader holds it. */
export interface Claim {
  readonly stamp: string
  readonly lease: string | null
}

/**
 * The cache as cache-aside needs it; one tag, one layer per backend (Redis, in-memory) with the same semantics.
 * Every operation is atomic in the backend: that is what makes "check the guard, then write" safe.
 */
export class Cache extends Context.Tag("Cache")<
  Cache,
  {
    /** Reads the slot; on a miss, returns the guard's stamp (creating one if needed) and tries to take the lease. */
    readonly lookup: (slot: Slot) => Effect.Effect<Lookup, CacheError>
    /** `lookup` of every slot, in one step: for reads that arrive together. */
    readonly lookupMany: (slots: ReadonlyArray<Slot>) => Effect.Effect<ReadonlyArray<Lookup>, CacheError>
    /** Stores the value if the guard still holds the stamp (`false` when a write got there first); frees the lease. */
    readonly fill: (slot: Slot, fill: Fill) => Effect.Effect<boolean, CacheError>
    /** `fill` of every slot given, in one step. */
    readonly fillMany: (
      fills: ReadonlyArray<readonly [Slot, Fill]>
    ) => Effect.Effect<ReadonlyArray<boolean>, CacheError>
    /**
     * Moves every guard to a fresh stamp, then deletes the keys, and the `also` keys (shadows: bookkeeping, so not
     * counted); returns how many `keys` existed.
     */
    readonly invalidate: (
      keys: ReadonlyArray<string>,
      guards: ReadonlyArray<string>,
      also?: ReadonlyArray<string>
    ) => Effect.Effect<number, CacheError>
    /**
     * Moves the guard, then deletes every entry the index names, their shadows, and the index; returns how many
     * entries existed.
     */
    readonly invalidateIndexed: (index: Index, guard: string) => Effect.Effect<number, CacheError>
    /**
     * Every removal, each as `invalidate` or `invalidateIndexed` would do it, in one round trip (in a cluster, one per
     * hash slot, sent together): what a write that removes a product and the list pages waits for once, not twice.
     * Returns how many entries each removal found.
     */
    readonly invalidateMany: (removals: ReadonlyArray<Removal>) => Effect.Effect<ReadonlyArray<number>, CacheError>
    /** The slot's fallback copy, if its shadow still holds one (and, for an indexed slot, the index names it). */
    readonly stale: (slot: Slot) => Effect.Effect<Stale | null, CacheError>
    /** Reads the guard's stamp (making one if needed) and tries to take the lease, as a miss would: for refresh ahead. */
    readonly claim: (slot: Slot) => Effect.Effect<Claim, CacheError>
    /** Succeeds when the cache answers now (in a cluster: every master); used by /health. */
    readonly ping: Effect.Effect<void, CacheError>
    /** For /health: not an operation on entries, so neither counted nor guarded. */
    readonly topology: Effect.Effect<CacheTopology>
  }
>() {}

/** The same cache with every operation passed through `around`, named as `CacheError.op` names it. */
export const aroundEach = (
  cache: Cache["Type"],
  around: <A>(op: CacheOperation, operation: Effect.Effect<A, CacheError>) => Effect.Effect<A, CacheError>
): Cache["Type"] =>
  Cache.of({
    lookup: (slot) => around("lookup", cache.lookup(slot)),
    lookupMany: (slots) => around("lookup", cache.lookupMany(slots)),
    fill: (slot, fill) => around("fill", cache.fill(slot, fill)),
    fillMany: (fills) => around("fill", cache.fillMany(fills)),
    invalidate: (keys, guards, also) => around("invalidate", cache.invalidate(keys, guards, also)),
    invalidateIndexed: (index, guard) => around("invalidate", cache.invalidateIndexed(index, guard)),
    invalidateMany: (removals) => around("invalidate", cache.invalidateMany(removals)),
    stale: (slot) => around("stale", cache.stale(slot)),
    claim: (slot) => around("claim", cache.claim(slot)),
    ping: around("ping", cache.ping),
    topology: cache.topology
  })

/**
 * How long a guard stamp lives. A guard only has to outlive the gap between a miss and its fill: when it expires,
 * the fill finds no stamp and is voided, which is safe. Short, so guards cost little memory.
 */
export const guardTtlMillis = 30_000

/** A lease left behind by a loader that died frees itself after this long. */
export const leaseTtlMillis = 1_000
