import { Context, Effect, Layer } from "effect"

/**
 * Which Redis histories the cache's entries may be trusted in. A Redis that restarts from a snapshot, or a replica
 * promoted in a failover, may hold entries that a write's invalidation had removed from the Redis it was sent to;
 * nothing inside Redis can tell, since a snapshot restores any marker kept there too. So the record lives with the
 * data, in the database: an epoch, and the histories (`run_id` and replication id) seen under it. Entries carry the
 * epoch they were filled under, and a history not seen under the current epoch starts a new one, which makes every
 * entry filled before it a miss for every instance. A reconnection to the same history changes nothing.
 */
export class CacheEpoch extends Context.Tag("CacheEpoch")<
  CacheEpoch,
  {
    /** The epoch under which entries of the history `identity` are trusted: the current one, or a new one. */
    readonly trust: (identity: string) => Effect.Effect<string, unknown>
  }
>() {}

/** How many histories an epoch remembers: enough for every node of a cluster and a few restarts of each. */
export const rememberedHistories = 64

/** A fresh epoch: never equal to one another process or an earlier database made. */
export const newEpoch = () =>
  `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}.${Math.random().toString(36).slice(2, 10)}`

/** The histories known under an epoch, with `identity` added and the oldest dropped past the limit. */
export const withHistory = (known: ReadonlyArray<string>, identity: string) =>
  [...known.filter((one) => one !== identity), identity].slice(-rememberedHistories)

/**
 * Kept in this process only: right for one process (it sees every history its cache lives through), and for tests.
 * Instances sharing a Redis need the shared record (Database/CacheEpochs.ts).
 */
export const layerLocal = Layer.sync(CacheEpoch, () => {
  let epoch = newEpoch()
  let known: ReadonlyArray<string> = []
  return CacheEpoch.of({
    trust: (identity) =>
      Effect.sync(() => {
        if (!known.includes(identity)) {
          // The first history is the first epoch's; a later unseen one may hold what earlier writes removed.
          if (known.length > 0) epoch = newEpoch()
          known = withHistory(known, identity)
        }
        return epoch
      })
  })
})
