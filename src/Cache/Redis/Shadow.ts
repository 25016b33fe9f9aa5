import type { Cluster, Redis } from "ioredis"
import type { Lookup, Slot } from "../../Cache.js"

const absent: Lookup = { _tag: "Absent" }

/** Far more than refresh ahead's window for any load this service makes, and more than any clock estimate's error. */
const nearExpiryMillis = 1_000

/** The fields of a shadow (Scripts.ts writes it) that a hit needs, if it was written under `epoch`. */
const underEpoch = (text: string | null, epoch: string): { load: number; expires: number } | undefined => {
  if (text === null || !text.startsWith(epoch) || text.charCodeAt(epoch.length) !== 124 /* | */) return undefined
  const at = text.indexOf("|", epoch.length + 1)
  const load = text.indexOf("|", at + 1)
  const expires = text.indexOf("|", load + 1)
  if (at < 0 || load < 0) return undefined
  return {
    load: Number(text.slice(at + 1, load)),
    expires: Number(expires < 0 ? text.slice(load + 1) : text.slice(load + 1, expires))
  }
}

/**
 * Hits and remembered absences of unindexed slots, read with one MGET of each slot's entry, shadow and absent key:
 * the same answer the lookup script gives them, as one command is as atomic as a script, for about a fifth of its
 * Redis time (the script pays for its keys, its Lua calls and its nested reply). What is found neither way (a miss,
 * an entry of another epoch, a page, whose index must name it) is `undefined`: the lookup script takes it, with the
 * claim that a miss needs.
 *
 * A hit's remaining life comes from the expiry its shadow records and `redisNow`, Redis's clock as read when that
 * connection's history was checked. Refresh ahead is all that weighs it, and only in an entry's last moments: an entry
 * that has less than `nearExpiryMillis` left by that estimate goes to the script, which reads its exact PTTL, so the
 * estimate decides no refresh.
 */
const readHits = async (
  client: Redis | Cluster,
  slots: ReadonlyArray<Slot>,
  epoch: string,
  redisNow: number
): Promise<Array<Lookup | undefined>> => {
  const keys: Array<string> = []
  for (const slot of slots) {
    if (slot.index !== undefined) continue
    keys.push(slot.key, slot.shadow)
    if (slot.absent !== undefined) keys.push(slot.absent)
  }
  const found: Array<Lookup | undefined> = new Array(slots.length)
  if (keys.length === 0) return found
  const replies = await client.mget(keys)
  let at = 0
  slots.forEach((slot, i) => {
    if (slot.index !== undefined) return
    const value = replies[at]!
    const shadow = underEpoch(replies[at + 1]!, epoch)
    const remembered = slot.absent === undefined ? null : replies[at + 2]!
    at += slot.absent === undefined ? 2 : 3
    if (value !== null && shadow !== undefined) {
      const ttl = shadow.expires - redisNow
      if (ttl > nearExpiryMillis) found[i] = { _tag: "Hit", value, ttl, load: shadow.load || 0 }
    } else if (remembered === epoch) found[i] = absent
  })
  return found
}

/**
 * Whether to read hits with `readHits` first, and that lookup. The MGET is a round trip more for whatever it does not
 * settle, and under a run of misses (a cold cache, a short TTL) that made a miss cost twice the CPU: so a lookup skips
 * it when most unindexed slots of the one before were neither hits nor remembered absences, whichever way that one
 * went (the script's replies, given to `observe`, tell as much as the MGET's).
 */
export const make = (client: Redis | Cluster) => {
  let mgetPays = true
  /** Notes how much of a lookup was settled without a claim, whichever way it went. */
  const observe = (slots: ReadonlyArray<Slot>, found: ReadonlyArray<Lookup | undefined>) => {
    let unindexed = 0
    let hits = 0
    slots.forEach((slot, at) => {
      if (slot.index !== undefined) return
      unindexed++
      if (found[at] !== undefined && found[at]!._tag !== "Miss") hits++
    })
    if (unindexed > 0) mgetPays = hits * 2 >= unindexed
  }
  /** The MGET, then the script for what it leaves; call it only while `skips()` says no. */
  const lookup = async (
    slots: ReadonlyArray<Slot>,
    epoch: string,
    redisNow: number,
    script: (rest: ReadonlyArray<Slot>) => Promise<ReadonlyArray<Lookup>>
  ): Promise<Array<Lookup>> => {
    const found = await readHits(client, slots, epoch, redisNow)
    const rest = slots.filter((_, at) => found[at] === undefined)
    const looked = rest.length === 0 ? [] : await script(rest)
    let next = 0
    const all = Array.from(found, (one) => one ?? looked[next++]!)
    observe(slots, all)
    return all
  }
  return { skips: () => !mgetPays, observe, lookup } as const
}
