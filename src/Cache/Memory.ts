import { Clock, Duration, Effect, Layer } from "effect"
import { Cache, guardTtlMillis, leaseTtlMillis } from "../Cache.js"
import type { Fill, Index, Lookup, Removal, Slot } from "../Cache.js"

const absent: Lookup = { _tag: "Absent" }

interface Entry {
  readonly value: string
  readonly expiresAt: number
}

/** The Redis layer's shadow hash: when the value was loaded, how long that took (µs), maybe a fallback copy. */
interface Shadow {
  readonly at: number
  readonly load: number
  readonly value: string | undefined
  readonly expiresAt: number
}

/**
 * The in-memory twin of the Redis layer: same guard semantics, expiry read from the Effect `Clock`, so tests move
 * time with `TestClock`. Single-process only; for tests and for running without Redis (`CACHE_BACKEND=memory`).
 */
export const make = Effect.gen(function* () {
  const store = new Map<string, Entry>()
  const shadows = new Map<string, Shadow>()
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

  const readShadow = (key: string, now: number): Shadow | undefined => {
    const shadow = shadows.get(key)
    if (shadow === undefined || shadow.expiresAt > now) return shadow
    shadows.delete(key)
    return undefined
  }

  const sweep = (now: number) => {
    for (const [key, entry] of store) if (entry.expiresAt <= now) store.delete(key)
    for (const [key, shadow] of shadows) if (shadow.expiresAt <= now) shadows.delete(key)
  }

  const shadowOf = (index: Index, key: string) => index.shadows + key.slice(index.entries.length)

  const named = (slot: Slot) => slot.index === undefined || indexes.get(slot.index.key)?.has(slot.key) === true

  // As in the Redis script: a full index evicts the entries that expire first, values and shadows included; scored
  // by when their shadows expire.
  const name = (index: Index, key: string, expiresAt: number) => {
    const { capacity, key: indexKey } = index
    const members = indexes.get(indexKey) ?? new Map<string, number>()
    indexes.set(indexKey, members)
    while (!members.has(key) && members.size >= capacity) {
      let first: [string, number] | undefined
      for (const member of members) if (first === undefined || member[1] < first[1]) first = member
      members.delete(first![0])
      store.delete(first![0])
      shadows.delete(shadowOf(index, first![0]))
    }
    members.set(key, expiresAt)
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

  const lookupOne = (slot: Slot, now: number): Lookup => {
    const value = read(slot.key, now)
    if (value !== undefined) {
      const ttl = store.get(slot.key)!.expiresAt - now
      return { _tag: "Hit", value, ttl, load: readShadow(slot.shadow, now)?.load ?? 0 }
    }
    if (slot.absent !== undefined && read(slot.absent, now) !== undefined) return absent
    const stamp = read(slot.guard, now) ?? stampGuard(slot.guard, now)
    return { _tag: "Miss", stamp, lease: takeLease(slot.lease, stamp, now) }
  }

  const fillOne = (slot: Slot, { grace, lease, load, stamp, ttl, value }: Fill, now: number) => {
    if (lease !== null && read(slot.lease, now) === lease) store.delete(slot.lease)
    if (read(slot.guard, now) !== stamp) return false
    const target = value === null ? slot.absent : slot.key
    if (target === undefined) return false
    const expiresAt = now + Duration.toMillis(ttl)
    store.set(target, { value: value ?? "", expiresAt })
    if (value !== null) {
      const graceMillis = grace === undefined ? 0 : Duration.toMillis(grace)
      const kept = expiresAt + graceMillis
      shadows.set(slot.shadow, {
        at: now,
        load: Math.round(load ?? 0),
        value: graceMillis > 0 ? value : undefined,
        expiresAt: kept
      })
      if (slot.index !== undefined) name(slot.index, target, kept)
    }
    // Entries nobody reads again would otherwise stay forever: sweep now and then, off the read path.
    if (++fills % 1024 === 0) sweep(now)
    return true
  }

  const removeOne = (removal: Removal, now: number) => {
    let removed = 0
    if (removal._tag === "Keys") {
      for (const guard of removal.guards) stampGuard(guard, now)
      for (const key of removal.keys) if (read(key, now) !== undefined && store.delete(key)) removed++
      for (const key of removal.also ?? []) shadows.delete(key)
      return removed
    }
    const { guard, index } = removal
    stampGuard(guard, now)
    for (const key of indexes.get(index.key)?.keys() ?? []) {
      if (read(key, now) !== undefined && store.delete(key)) removed++
      shadows.delete(shadowOf(index, key))
    }
    indexes.delete(index.key)
    return removed
  }

  return Cache.of({
    lookup: (slot) => Effect.map(Clock.currentTimeMillis, (now) => lookupOne(slot, now)),
    lookupMany: (slots) => Effect.map(Clock.currentTimeMillis, (now) => slots.map((slot) => lookupOne(slot, now))),
    fill: (slot, fill) => Effect.map(Clock.currentTimeMillis, (now) => fillOne(slot, fill, now)),
    fillMany: (fills) =>
      Effect.map(Clock.currentTimeMillis, (now) => fills.map(([slot, fill]) => fillOne(slot, fill, now))),
    invalidate: (keys, guards, also = []) =>
      Effect.map(Clock.currentTimeMillis, (now) => removeOne({ _tag: "Keys", keys, guards, also }, now)),
    invalidateIndexed: (index, guard) =>
      Effect.map(Clock.currentTimeMillis, (now) => removeOne({ _tag: "Indexed", index, guard }, now)),
    invalidateMany: (removals) =>
      Effect.map(Clock.currentTimeMillis, (now) => removals.map((removal) => removeOne(removal, now))),
    stale: (slot) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const shadow = readShadow(slot.shadow, now)
        if (shadow?.value === undefined || !named(slot)) return null
        return { value: shadow.value, age: now - shadow.at }
      }),
    claim: (slot) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const stamp = read(slot.guard, now) ?? stampGuard(slot.guard, now)
        return { stamp, lease: takeLease(slot.lease, stamp, now) }
      }),
    ping: Effect.void,
    topology: Effect.succeed({ kind: "memory" })
  })
})

export const layer = Layer.effect(Cache, make)
