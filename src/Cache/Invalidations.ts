import { Context, Effect, Layer } from "effect"

/**
 * Invalidations that could not reach the cache. While one is pending for a key, the entry under that key may hold
 * what a write replaced, so no process may read it from the cache; the first process that can reach the cache
 * applies the invalidation and clears it. A generation tells that retry apart from a newer failure of the same key.
 */
export class Invalidations extends Context.Tag("Invalidations")<
  Invalidations,
  {
    /** The generation of `key`'s pending invalidation, if any. Asked on every cached read, so it must be cheap. */
    readonly pending: (key: string) => Effect.Effect<string | undefined>
    /** `pending` of many keys at one instant, with one look at the shared record for all of them. */
    readonly pendingAll: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<string | undefined>>
    readonly record: (key: string) => Effect.Effect<void>
    /** Clears the pending invalidation of `key` if it is still the one of `generation`. */
    readonly clear: (key: string, generation: string) => Effect.Effect<void>
  }
>() {}

let generations = 0
export const nextGeneration = () => `${process.pid}.${Date.now()}.${++generations}`

/** Kept in this process only: enough for one process, and for tests. */
export const layerLocal = Layer.sync(Invalidations, () => {
  const pending = new Map<string, string>()
  return Invalidations.of({
    pending: (key) => Effect.sync(() => pending.get(key)),
    pendingAll: (keys) => Effect.sync(() => keys.map((key) => pending.get(key))),
    record: (key) => Effect.sync(() => void pending.set(key, nextGeneration())),
    clear: (key, generation) => Effect.sync(() => void (pending.get(key) === generation && pending.delete(key)))
  })
})
