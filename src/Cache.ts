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

/**
 * What a lookup found. A miss carries the stamp its key's guard held at that instant: a fill must show it,
 * so that a write landing between this lookup and the fill voids the fill instead of being overwritten by it.
 */
export type Lookup =
  { readonly _tag: "Hit"; readonly value: string } | { readonly _tag: "Miss"; readonly stamp: string }

export interface Fill {
  readonly key: string
  readonly value: string
  readonly ttl: Duration.Duration
  readonly guard: string
  readonly stamp: string
}

/**
 * The cache as cache-aside needs it. Every entry has a guard key (one per product, one shared by all list pages):
 * readers take its stamp on a miss and fill only if it is unchanged; writers move it before deleting entries.
 * One tag, one layer per backend (Redis, in-memory) with the same semantics.
 */
export class Cache extends Context.Tag("Cache")<
  Cache,
  {
    /** Reads `key`; on a miss returns the stamp of `guard`, creating one if the guard has none. */
    readonly lookup: (key: string, guard: string) => Effect.Effect<Lookup, CacheError>
    /** Stores the entry if its guard still holds the stamp; `false` when a write got there first. */
    readonly fill: (fill: Fill) => Effect.Effect<boolean, CacheError>
    /** Moves every guard to a fresh stamp, then deletes the keys; returns how many keys existed. */
    readonly invalidate: (
      keys: ReadonlyArray<string>,
      guards: ReadonlyArray<string>
    ) => Effect.Effect<number, CacheError>
    /** Moves the guard, then deletes every key matching the glob `pattern` without blocking the server. */
    readonly invalidateMatching: (pattern: string, guard: string) => Effect.Effect<number, CacheError>
    /** Succeeds when the cache answers now; used by /health. */
    readonly ping: Effect.Effect<void, CacheError>
  }
>() {}

/**
 * How long a guard stamp lives. A guard only has to outlive the gap between a miss and its fill: when it expires,
 * the fill finds no stamp and is voided, which is safe. Short, so guards cost little memory.
 */
export const guardTtlMillis = 30_000
