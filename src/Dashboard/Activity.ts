import * as Answered from "../Http/Answered.js"
import type { Answer } from "../Http/Answered.js"

// What the dashboard shows of the requests themselves: how many of each kind, the latency of hits and misses, and
// the last few. Recorded only while someone watches (a dashboard connected to this process, or, under WORKERS=N,
// to another worker that collects from this one): only then is `note` subscribed to HTTP's answers, so otherwise
// the request path pays one length test.

/**
 * How a request counts on the dashboard. One word, one meaning: `cache_error` is a read the cache failed (answered
 * from the database), `http_error` an answer of 400 or more (a 404 aside) or any 5xx.
 */
export type Kind = "hit" | "miss" | "cache_error" | "write" | "http_error" | "other"

export const kinds: ReadonlyArray<Kind> = ["hit", "miss", "cache_error", "write", "http_error", "other"]

export interface RecentRequest {
  /** Epoch milliseconds when it was answered. */
  readonly at: number
  readonly method: string
  readonly path: string
  readonly status: number
  readonly x_cache: string | null
  /** The cache failed this request's read; its `X-Cache` says MISS. */
  readonly cache_error: boolean
  readonly duration_ms: number
}

/** Cumulative counts since recording began in this process: listeners difference two of them. */
export interface Totals {
  readonly counts: Record<Kind, number>
  /** Latency histograms (`bucketOf`) of the reads answered with X-Cache HIT and MISS. */
  readonly hitBuckets: ReadonlyArray<number>
  readonly missBuckets: ReadonlyArray<number>
  readonly recent: ReadonlyArray<RecentRequest>
}

// Log-spaced buckets, 10 % wide, from 10 µs to 10 s: a percentile read from them is within 5 % of the true value,
// and histograms of several workers (or two instants) add and subtract bucket by bucket.
const smallestMillis = 0.01
const growth = 1.1
export const bucketCount = Math.ceil(Math.log(1_000_000) / Math.log(growth)) + 1

export const bucketOf = (millis: number) =>
  millis <= smallestMillis
    ? 0
    : Math.min(bucketCount - 1, Math.floor(Math.log(millis / smallestMillis) / Math.log(growth)))

/** The middle of a bucket, geometrically: what a percentile falling in it reports. */
export const bucketMillis = (bucket: number) => smallestMillis * Math.pow(growth, bucket + 0.5)

/** The `q` quantile (0–1) of a histogram, or `null` when it is empty. */
export const quantile = (buckets: ReadonlyArray<number>, q: number): number | null => {
  let total = 0
  for (const count of buckets) total += count
  if (total === 0) return null
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (let bucket = 0; bucket < buckets.length; bucket++) {
    seen += buckets[bucket]!
    if (seen >= rank) return bucketMillis(bucket)
  }
  return bucketMillis(buckets.length - 1)
}

export const recentLimit = 20
const pathLimit = 200

// The dashboard's own traffic (its page, assets and feed) would crowd out what it is there to show.
const ownPaths = /^\/(?:dashboard(?:\/|$)|api\/v1\/cache\/events(?:\?|$)|favicon\.ico$|$)/

const writes = new Set(["POST", "PUT", "PATCH", "DELETE"])

export const kindOf = (method: string, status: number, xCache: string | undefined, cacheFailed = false): Kind => {
  if (status >= 500) return "http_error"
  if (cacheFailed) return "cache_error"
  if (xCache === "HIT") return "hit"
  if (xCache === "MISS") return "miss"
  if (status >= 400 && status !== 404) return "http_error"
  return writes.has(method) ? (status < 400 ? "write" : "http_error") : "other"
}

const zeroCounts = (): Record<Kind, number> => ({
  hit: 0,
  miss: 0,
  cache_error: 0,
  write: 0,
  http_error: 0,
  other: 0
})

const counts = zeroCounts()
const hitBuckets = new Array<number>(bucketCount).fill(0)
const missBuckets = new Array<number>(bucketCount).fill(0)
const recent: Array<RecentRequest> = []

/** `true` only while a dashboard watches this process, and `note` hears every answer. */
export const recording = { on: false }

let localListeners = 0
let remoteUntil = 0
let remoteTimer: NodeJS.Timeout | undefined
let unsubscribe: (() => void) | undefined

const update = () => {
  recording.on = localListeners > 0 || Date.now() < remoteUntil
  if (recording.on && unsubscribe === undefined) unsubscribe = Answered.subscribe(note)
  else if (!recording.on && unsubscribe !== undefined) {
    unsubscribe()
    unsubscribe = undefined
  }
}

/** A dashboard feed in this process starts; the returned function ends it. */
export const listen = () => {
  localListeners++
  update()
  let done = false
  return () => {
    if (done) return
    done = true
    localListeners--
    update()
  }
}

// Another worker's feed collects every second; a few missed collections (that feed closed) stop the recording.
const remoteMillis = 3_000

/** Another worker's dashboard collected from this one: keep recording for a while. */
export const collectedRemotely = () => {
  remoteUntil = Date.now() + remoteMillis
  update()
  clearTimeout(remoteTimer)
  remoteTimer = setTimeout(update, remoteMillis + 10)
  remoteTimer.unref()
}

const changeListeners = new Set<() => void>()

/** Calls `listener` after each request the dashboard shows; returns a function that forgets it. */
export const onChange = (listener: () => void) => {
  changeListeners.add(listener)
  return () => void changeListeners.delete(listener)
}

/** Notes one answered request: subscribed to HTTP's answers while `recording.on`. */
const note = ({ cacheFailed, elapsedMillis: millis, method, path, status, xCache }: Answer) => {
  const kind = kindOf(method, status, xCache, cacheFailed)
  counts[kind]++
  if (kind === "hit") hitBuckets[bucketOf(millis)]!++
  else if (kind === "miss") missBuckets[bucketOf(millis)]!++
  if (ownPaths.test(path)) return
  if (recent.length === recentLimit) recent.shift()
  recent.push({
    at: Date.now(),
    method,
    path: path.length > pathLimit ? path.slice(0, pathLimit) + "…" : path,
    status,
    x_cache: xCache ?? null,
    cache_error: cacheFailed,
    duration_ms: Math.round(millis * 1000) / 1000
  })
  for (const listener of changeListeners) listener()
}

export const totals = (): Totals => ({
  counts: { ...counts },
  hitBuckets: [...hitBuckets],
  missBuckets: [...missBuckets],
  recent: [...recent]
})

export const emptyTotals = (): Totals => ({
  counts: zeroCounts(),
  hitBuckets: new Array<number>(bucketCount).fill(0),
  missBuckets: new Array<number>(bucketCount).fill(0),
  recent: []
})

const addBuckets = (into: Array<number>, from: ReadonlyArray<number>) => {
  for (let i = 0; i < into.length; i++) into[i]! += from[i] ?? 0
}

/** The totals of several processes as one. */
export const sum = (parts: ReadonlyArray<Totals>): Totals => {
  const total = emptyTotals()
  const counts = total.counts
  const hits = total.hitBuckets as Array<number>
  const misses = total.missBuckets as Array<number>
  for (const part of parts) {
    for (const kind of kinds) counts[kind] += part.counts[kind] ?? 0
    addBuckets(hits, part.hitBuckets)
    addBuckets(misses, part.missBuckets)
  }
  const recent = parts
    .flatMap((part) => part.recent)
    .sort((a, b) => a.at - b.at)
    .slice(-recentLimit)
  return { ...total, recent }
}

const nonNegative = (n: number) => (n > 0 ? n : 0)

/**
 * What happened between two totals. A worker replaced in between starts again from zero, so a count that went down
 * is taken as zero rather than negative.
 */
export const since = (before: Totals, now: Totals): Totals => ({
  counts: Object.fromEntries(
    kinds.map((kind) => [kind, nonNegative(now.counts[kind] - (before.counts[kind] ?? 0))])
  ) as Record<Kind, number>,
  hitBuckets: now.hitBuckets.map((count, i) => nonNegative(count - (before.hitBuckets[i] ?? 0))),
  missBuckets: now.missBuckets.map((count, i) => nonNegative(count - (before.missBuckets[i] ?? 0))),
  recent: now.recent
})
