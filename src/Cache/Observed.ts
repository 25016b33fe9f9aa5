import { Effect, FiberRef, Layer } from "effect"
import type { CacheError, Removal } from "../Cache.js"
import { Cache } from "../Cache.js"

const degraded = (error: CacheError) =>
  Effect.annotateCurrentSpan({
    "cache.outcome": error.reason === "skipped" ? "skipped" : "error",
    "cache.error": error.message
  })

const span =
  <A>(name: string, attributes: Record<string, unknown>, outcome: (a: A) => Record<string, unknown>) =>
  (operation: Effect.Effect<A, CacheError>) =>
    operation.pipe(
      Effect.tapBoth({ onFailure: degraded, onSuccess: (a) => Effect.annotateCurrentSpan(outcome(a)) }),
      Effect.withSpan(name, { attributes, captureStackTrace: false })
    )

const deleted = (count: number) => ({ "cache.outcome": "deleted", "cache.deleted": count })

const removedKeys = (removal: Removal) => (removal._tag === "Keys" ? removal.keys.join(" ") : removal.index.key)

const traced = (cache: Cache["Type"]): Cache["Type"] =>
  Cache.of({
    lookup: (slot) =>
      cache
        .lookup(slot)
        .pipe(
          span("Cache.lookup", { "cache.key": slot.key }, (found) => ({ "cache.outcome": found._tag.toLowerCase() }))
        ),
    lookupMany: (slots) =>
      cache.lookupMany(slots).pipe(
        span("Cache.lookupMany", { "cache.keys": slots.length }, (found) => ({
          "cache.hits": found.filter((one) => one._tag !== "Miss").length
        }))
      ),
    fill: (slot, fill) =>
      cache.fill(slot, fill).pipe(
        span("Cache.fill", { "cache.key": fill.value === null ? slot.absent : slot.key }, (stored) => ({
          "cache.outcome": stored ? "stored" : "refused"
        }))
      ),
    fillMany: (fills) =>
      cache.fillMany(fills).pipe(
        span("Cache.fillMany", { "cache.keys": fills.length }, (stored) => ({
          "cache.stored": stored.filter((one) => one).length
        }))
      ),
    invalidate: (keys, guards, also) =>
      cache.invalidate(keys, guards, also).pipe(span("Cache.invalidate", { "cache.key": keys.join(" ") }, deleted)),
    invalidateIndexed: (index, guard) =>
      cache.invalidateIndexed(index, guard).pipe(span("Cache.invalidate", { "cache.index": index.key }, deleted)),
    invalidateMany: (removals) =>
      cache
        .invalidateMany(removals)
        .pipe(
          span("Cache.invalidate", { "cache.key": removals.map(removedKeys).join(" ") }, (counts) =>
            deleted(counts.reduce((sum, count) => sum + count, 0))
          )
        ),
    stale: (slot) =>
      cache.stale(slot).pipe(
        span("Cache.stale", { "cache.key": slot.shadow }, (found) => ({
          "cache.outcome": found === null ? "miss" : "stale"
        }))
      ),
    claim: (slot) =>
      cache.claim(slot).pipe(
        span("Cache.claim", { "cache.key": slot.key }, (claimed) => ({
          "cache.outcome": claimed.lease === null ? "held" : "claimed"
        }))
      ),
    ping: cache.ping.pipe(span("Cache.ping", {}, () => ({ "cache.outcome": "up" }))),
    topology: cache.topology
  })

/**
 * With `spans`, the cache with a span per operation (`Cache.lookup`, `Cache.fill`, `Cache.invalidate`,
 * `Cache.ping`) carrying the key and what came of it: hit, miss or absent; stored or refused; error or skipped (the
 * open circuit). Without (tracing off) the cache itself: not even a no-op span is made.
 */
export const make = (cache: Cache["Type"], options: { readonly spans: boolean }): Cache["Type"] =>
  options.spans ? traced(cache) : cache

/** Wraps whatever Cache layer it is applied to; spans only if the tracer is enabled where the layer is built. */
export const layer = <E, R>(cacheLayer: Layer.Layer<Cache, E, R>) =>
  Layer.effect(
    Cache,
    Effect.gen(function* () {
      const spans = yield* FiberRef.get(FiberRef.currentTracerEnabled)
      return make(yield* Cache, { spans })
    })
  ).pipe(Layer.provide(cacheLayer))
