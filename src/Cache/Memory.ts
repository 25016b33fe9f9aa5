import { Clock, Duration, Effect, Layer } from "effect"
import { Cache, guardTtlMillis, leaseTtlMillis } from "../Cache.js"

interface Entry {
  readonly value: string
  readonly expiresAt: number
}

const globToRegExp = (glob: string) =>
  new RegExp(
    "^" +
      glob.replace(/\\(.)|([.+^${}()|[\]\\])|(\*)|(\?)/g, (_, escaped, special, star, question) =>
        escaped !== undefined
          ? escaped.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
          : special !== undefined
            ? `\\${special}`
            : star !== undefined
              ? ".*"
              : question !== undefined
                ? "."
                : ""
      ) +
      "$"
  )

/**
 * The in-memory twin of the Redis layer: same guard semantics, expiry read from the Effect `Clock`, so tests move
 * time with `TestClock`. Single-process only; for tests and for running without Redis (`CACHE_BACKEND=memory`).
 */
export const make = Effect.gen(function* () {
  const store = new Map<string, Entry>()
  let nextStamp = 0
  let fills = 0

  const read = (key: string, now: number): string | undefined => {
    const entry = store.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      store.delete(key)
      return undefined
    }
    return entry.value
  }

  const sweep = (now: number) => {
    for (const [key, entry] of store) if (entry.expiresAt <= now) store.delete(key)
  }

  const stampGuard = (guard: string, now: number) => {
    const stamp = `m${++nextStamp}`
    store.set(guard, { value: stamp, expiresAt: now + guardTtlMillis })
    return stamp
  }

  // Held as "<stamp>|<token>": a lease taken under an older stamp is taken over (see the Redis script).
  const takeLease = (lease: string, stamp: string, now: number) => {
    if (read(lease, now)?.startsWith(`${stamp}|`)) return null
    const held = `${stamp}|l${++nextStamp}`
    store.set(lease, { value: held, expiresAt: now + leaseTtlMillis })
    return held
  }

  return Cache.of({
    lookup: (slot) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const value = read(slot.key, now)
        if (value !== undefined) return { _tag: "Hit", value } as const
        if (slot.absent !== undefined && read(slot.absent, now) !== undefined) return { _tag: "Absent" } as const
        const stamp = read(slot.guard, now) ?? stampGuard(slot.guard, now)
        return { _tag: "Miss", stamp, lease: takeLease(slot.lease, stamp, now) } as const
      }),
    fill: (slot, { lease, stamp, ttl, value }) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (lease !== null && read(slot.lease, now) === lease) store.delete(slot.lease)
        if (read(slot.guard, now) !== stamp) return false
        const target = value === null ? slot.absent : slot.key
        if (target === undefined) return false
        store.set(target, { value: value ?? "", expiresAt: now + Duration.toMillis(ttl) })
        // Entries nobody reads again would otherwise stay forever: sweep now and then, off the read path.
        if (++fills % 1024 === 0) sweep(now)
        return true
      }),
    invalidate: (keys, guards) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        for (const guard of guards) stampGuard(guard, now)
        let removed = 0
        for (const key of keys) if (read(key, now) !== undefined && store.delete(key)) removed++
        return removed
      }),
    invalidateMatching: (pattern, guard) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        sweep(now)
        stampGuard(guard, now)
        const matches = globToRegExp(pattern)
        let removed = 0
        for (const key of store.keys()) if (matches.test(key) && store.delete(key)) removed++
        return removed
      }),
    ping: Effect.void
  })
})

export const layer = Layer.effect(Cache, make)
