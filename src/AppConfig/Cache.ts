import { Config, Duration, Either } from "effect"
import { goDuration, parseDuration } from "./Parse.js"

/** Entry lifetime (`CACHE_TTL`, Go-style duration). */
export const cacheTtl = goDuration("CACHE_TTL", "5m")

/**
 * How long an entry's fallback copy outlives it (`CACHE_GRACE`, Go-style duration): a read whose database load fails
 * answers with that copy (`X-Cache: STALE`) rather than a 503. Unset, empty, `0` or `off`: no copy is kept.
 */
export const cacheGrace = Config.string("CACHE_GRACE").pipe(
  Config.withDefault("off"),
  Config.mapOrFail((text) =>
    text.trim() === "" || text.trim() === "off" || text.trim() === "0"
      ? Either.right(Duration.zero)
      : parseDuration("CACHE_GRACE", text.trim())
  )
)

/**
 * Refresh ahead (`CACHE_REFRESH_AHEAD`, default true): a hit on an entry close to expiry may reload it in the
 * background (XFetch), so a hot key does not miss when its TTL ends. `false` leaves every entry to expire.
 */
export const cacheRefreshAhead = Config.boolean("CACHE_REFRESH_AHEAD").pipe(Config.withDefault(true))

/** Key prefix (`CACHE_PREFIX`). */
export const cachePrefix = Config.string("CACHE_PREFIX").pipe(
  Config.validate({ message: "must not be empty or contain spaces", validation: (p) => /^\S+$/.test(p) }),
  Config.withDefault("product:")
)

/** `redis` (default) or `memory`, for running with no Redis at hand. */
export const cacheBackend = Config.literal("redis", "memory")("CACHE_BACKEND").pipe(Config.withDefault("redis"))

/** How many list pages are cached when `CACHE_MAX_PAGES` does not say (also the key builder's, Cache/Keys.ts). */
export const defaultMaxPages = 1_000

/**
 * How many list pages the cache keeps (`CACHE_MAX_PAGES`): every `offset`/`limit` pair is a page of its own, so
 * without a bound anonymous clients could grow Redis at will. A fill beyond it evicts the page that expires first.
 * Capped so that the single script that removes every page on a write stays well inside CACHE_TIMEOUT.
 */
export const cacheMaxPages = Config.integer("CACHE_MAX_PAGES").pipe(
  Config.validate({ message: "must be an integer from 1 to 10000", validation: (n) => n >= 1 && n <= 10_000 }),
  Config.withDefault(defaultMaxPages)
)

/** The longest any request waits on one Redis command before it is counted as an error and skipped. */
export const cacheTimeout = goDuration("CACHE_TIMEOUT", "200ms")
