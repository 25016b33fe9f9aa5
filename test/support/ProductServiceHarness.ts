import { ConfigProvider, Context, Effect, Layer, Metric } from "effect"
import { Cache } from "../../src/Cache.js"
import * as Invalidations from "../../src/Cache/Invalidations.js"
import * as MemoryCache from "../../src/Cache/Memory.js"
import { CacheStats } from "../../src/Cache/Stats.js"
import type { CreateProduct } from "../../src/Domain/Product.js"
import { cacheCoalescedLoads } from "../../src/Metrics.js"
import { ProductService } from "../../src/ProductService.js"
import * as Services from "../../src/Services.js"
import { makeRepo, makeSwitchableCache } from "./Fakes.js"

// ProductService composed as main.ts composes it (Services.ts), over in-memory fakes, for the ProductService*.test.ts
// suites.

export const laptop: CreateProduct = {
  name: "Laptop",
  description: "fast",
  price: 999.99,
  stock: 5,
  category: "Electronics"
}

export const configWith = (ttl: string, env: Record<string, string> = {}) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({ CACHE_TTL: ttl, ...env }))))

export const config = configWith("1m")

/** A service over a fresh fake repo and a switchable in-memory cache, with handles on all of them. */
export const setup = (
  options: { readonly cacheDown?: boolean; readonly ttl?: string; readonly env?: Record<string, string> } = {}
) =>
  Effect.gen(function* () {
    const fake = yield* makeRepo
    const memory = yield* Effect.map(Layer.build(MemoryCache.layer), Context.get(Cache))
    const cache = makeSwitchableCache(memory, options.cacheDown ?? false)
    const context = yield* Layer.build(
      Services.layer({ repo: fake.layer, stats: CacheStats.Default, invalidations: Invalidations.layerLocal }).pipe(
        Layer.provide(cache.layer),
        Layer.provide(configWith(options.ttl ?? "1m", options.env)),
        // As main.ts runs without an OTLP endpoint: with tracing on, each read loads alone, under its own span.
        Layer.provide(Layer.setTracerEnabled(false))
      )
    )
    const stats = Context.get(context, CacheStats)
    return {
      service: Context.get(context, ProductService),
      stats: () => stats.snapshot,
      fake,
      cache,
      memory
    }
  })

/** Yields until `done` holds: forked fibers run on yields, not on the test clock. */
export const waitUntil = (done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let turn = 0; turn < 10_000; turn++) {
      if (yield* done) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition not reached")
  })

export const coalesced = Effect.map(Metric.value(cacheCoalescedLoads), (state) => state.count)

export const counts = (snapshot: { hits: number; misses: number; sets: number; deletes: number; errors: number }) => ({
  hits: snapshot.hits,
  misses: snapshot.misses,
  sets: snapshot.sets,
  deletes: snapshot.deletes,
  errors: snapshot.errors
})
