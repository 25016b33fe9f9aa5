import { Clock, Duration, Effect, Layer } from "effect"
import { Cache, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { Index } from "../Cache.js"

interface Entry {
  readonly value: string
  readonly expiresAt: number
}

/**
 * The in-memory twin of the Redis layer: same guard semantics, expiry read from the Effect `Clock`, so tests move
 * time with `TestClock`. Single-process only; for tests and for running without Redis (`CACHE_BACKEND=memory`).
 */
export const make = Effect.gen(function* () {
  const store = new Map<string, Entry>()
  // Index key -> the entries it names -> when each expires: the sorted set of the Redis layer.
  const indexes = new Map<string, Map<string, number>>()
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

  // As in the Redis script: a full index evicts the entries that expire first, values included.
  const name = ({ capacity, key: index }: Index, key: string, expiresAt: number) => {
    const named = indexes.get(index) ?? new Map<string, number>()
    indexes.set(index, named)
    while (!named.has(key) && named.size >= capacity) {
      let first: [string, number] | undefined
      for (const member of named) if (first === undefined || member[1] < first[1]) first = member
      named.delete(first![0])
      store.delete(first![0])
    }
    named.set(key, expiresAt)
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
    peek: (slots) => Effect.map(Clock.currentTimeMillis, (now) => slots.map((slot) => read(slot.key, now))),
    fill: (slot, { lease, stamp, ttl, value }) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (lease !== null && read(slot.lease, now) === lease) store.delete(slot.lease)
        if (read(slot.guard, now) !== stamp) return false
        const target = value === null ? slot.absent : slot.key
        if (target === undefined) return false
        const expiresAt = now + Duration.toMillis(ttl)
        store.set(target, { value: value ?? "", expiresAt })
        if (value !== null && slot.index !== undefined) name(slot.index, target, expiresAt)
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
    invalidateIndexed: (index, guard) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        stampGuard(guard, now)
        let removed = 0
        for (const key of indexes.get(index)?.keys() ?? []) {
          if (read(key, now) !== undefined && store.delete(key)) removed++
        }
        indexes.delete(index)
        return removed
      }),
    ping: Effect.void
  })
})

export const layer = Layer.effect(Cache, make)
