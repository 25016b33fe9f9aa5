import { Context, Data } from "effect"
import type { Duration, Effect } from "effect"

/** A cache operation that could not be done: failed, timed out, or refused because the cache is unreachable. */
export class CacheError extends Data.TaggedError("CacheError")<{
  readonly op: string
  readonly cause: unknown
}> {
  override get message() {
    return `cache ${this.op} failed: ${this.cause instanceof Error ? this.cause.message : String(this.cause)}`
  }
}

/** The cause of an operation the open circuit refused without trying it: counted as skipped, not as failed. */
export class CircuitOpen extends Error {
  constructor() {
    super("circuit open: cache recently unreachable")
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
}

/**
 * Where one cached answer lives. `key` holds the value; `guard` holds the stamp that fills must show (one guard per
 * product, one shared by all list pages); `lease` names the reader that loads it after a miss; `absent`, where
 * given, remembers that there is nothing to load; `index`, where given, names the entry in the same atomic step
 * as its fill, and an entry it does not name is never served.
 */
export interface Slot {
  readonly key: string
  readonly guard: string
  readonly lease: string
  readonly absent?: string
  readonly index?: Index
}

/**
 * What a lookup found. A miss carries the stamp its guard held at that instant, which the fill must show, so a
 * write landing between this lookup and the fill voids the fill instead of being overwritten by it. `lease` is
 * this reader's token when it is the one to load; `null` when another reader (maybe in another process) holds it.
 */
export type Lookup =
  | { readonly _tag: "Hit"; readonly value: string }
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Miss"; readonly stamp: string; readonly lease: string | null }

export interface Fill {
  readonly stamp: string
  /** The value to store, or `null` to remember under `slot.absent` that there is none. */
  readonly value: string | null
  readonly ttl: Duration.Duration
  /** The lease token to give back, if this reader held it. */
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
    /**
     * The values of the slots that a lookup would find as a hit now, `undefined` for the others, in one step and
     * without the bookkeeping of a miss: for serving many reads at once, each of which not found here then looks up.
     */
    readonly peek: (slots: ReadonlyArray<Slot>) => Effect.Effect<ReadonlyArray<string | undefined>, CacheError>
    /** Stores the value if the guard still holds the stamp (`false` when a write got there first); frees the lease. */
    readonly fill: (slot: Slot, fill: Fill) => Effect.Effect<boolean, CacheError>
    /** Moves every guard to a fresh stamp, then deletes the keys; returns how many keys existed. */
    readonly invalidate: (
      keys: ReadonlyArray<string>,
      guards: ReadonlyArray<string>
    ) => Effect.Effect<number, CacheError>
    /** Moves the guard, then deletes every entry the index names and the index; returns how many entries existed. */
    readonly invalidateIndexed: (index: string, guard: string) => Effect.Effect<number, CacheError>
    /** Succeeds when the cache answers now; used by /health. */
    readonly ping: Effect.Effect<void, CacheError>
  }
>() {}

/** The same cache with every operation passed through `around`, named as `CacheError.op` names it. */
export const aroundEach = (
  cache: Cache["Type"],
  around: <A>(op: string, operation: Effect.Effect<A, CacheError>) => Effect.Effect<A, CacheError>
): Cache["Type"] =>
  Cache.of({
    lookup: (slot) => around("lookup", cache.lookup(slot)),
    peek: (slots) => around("lookup", cache.peek(slots)),
    fill: (slot, fill) => around("fill", cache.fill(slot, fill)),
    invalidate: (keys, guards) => around("invalidate", cache.invalidate(keys, guards)),
    invalidateIndexed: (index, guard) => around("invalidate", cache.invalidateIndexed(index, guard)),
    ping: around("ping", cache.ping)
  })

/**
 * How long a guard stamp lives. A guard only has to outlive the gap between a miss and its fill: when it expires,
 * the fill finds no stamp and is voided, which is safe. Short, so guards cost little memory.
 */
export const guardTtlMillis = 30_000

/** A lease left behind by a loader that died frees itself after this long. */
export const leaseTtlMillis = 1_000
