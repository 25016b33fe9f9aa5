import { Effect, Option } from "effect"

/** A read's answer as JSON text: a hit is served as the cache holds it, never decoded and encoded again. */
export interface Served {
  readonly json: string
  readonly fromCache: boolean
  /**
   * Only on a fallback copy (CACHE_GRACE) served because the database failed: milliseconds since its value was
   * loaded, and the failure, which the answer hides from the client and the log must not.
   */
  readonly age?: number
  readonly failure?: unknown
  /** The cache failed this read (its lookup, or a pending invalidation it had to apply): answered from the database. */
  readonly cacheFailed?: true
}

export const fromDatabase = (json: string): Served => ({ json, fromCache: false })

export const cacheFailed = (served: Served): Served => ({ ...served, cacheFailed: true })

/** What a load found, as the read's answer: its value, or `absent` when there is none. */
export const servedOf =
  <A>(absent: () => Effect.Effect<never, A>) =>
  (found: Option.Option<string>): Effect.Effect<Served, A> =>
    Option.isSome(found) ? Effect.succeed(fromDatabase(found.value)) : absent()
