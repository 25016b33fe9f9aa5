import { createHash } from "node:crypto"
import { Cluster } from "ioredis"
import type { Redis } from "ioredis"
import type { Removal, Slot } from "../../Cache.js"

// Each script runs atomically in Redis: that is what makes "check the guard, then write" a single step. Each names
// its inputs at its top; a script over many slots takes five keys per slot (Keys.ts's `slotKeys`).

// A shadow is a string, "<epoch>|<loaded at>|<load µs>|<expires at>" (times in Redis's milliseconds), then
// "|<value>" when it keeps a fallback copy: a string, so that a hit can be checked with a plain MGET (Shadow.ts). A
// shadow of another type (a hash, as an older version wrote it) reads as none, so a fill replaces it.
const shadowSteps = `
local function readShadow(shadowKey)
  local text = redis.pcall("GET", shadowKey)
  if type(text) ~= "string" then return nil end
  local epoch, at, load, expires, copy = string.match(text, "^([^|]*)|([^|]*)|([^|]*)|([^|]*)|?(.*)$")
  if not epoch then return nil end
  return {epoch = epoch, at = tonumber(at), load = tonumber(load), expires = tonumber(expires), copy = copy}
end`

// Reads the guard's stamp (making `token` the stamp if it has none) and takes the lease unless another reader holds
// it under that stamp. The lease is held as "<stamp>|<token>": a lease taken under an older stamp belongs to a reader
// whose fill a write has already voided, so it is taken over rather than waited for. Replies {0, stamp, lease or
// false}. Shared by the claim and the lookup of a miss.
const claimSteps = `
local function claim(guardKey, leaseKey, token, guardTtl, leaseTtl)
  local stamp = redis.call("GET", guardKey)
  if not stamp then
    stamp = token
    redis.call("SET", guardKey, stamp, "PX", guardTtl)
  end
  local held = redis.call("GET", leaseKey)
  if held and string.sub(held, 1, #stamp + 1) == stamp .. "|" then return {0, stamp, false} end
  local lease = stamp .. "|" .. token
  redis.call("SET", leaseKey, lease, "PX", leaseTtl)
  return {0, stamp, lease}
end`

const claimScript = `${claimSteps}
local guardKey, leaseKey = KEYS[2], KEYS[3]
local token, guardTtl, leaseTtl = ARGV[1], ARGV[2], ARGV[3]
return claim(guardKey, leaseKey, token, guardTtl, leaseTtl)`

// Looks up many slots in one step. Per slot: a hit also replies what refresh ahead needs, so that an ordinary hit
// costs no second round trip: the entry's remaining life (ms) and how long its load took (µs, from its shadow). On a
// miss, the guard's stamp and maybe the lease, as `claim` (a slot's token is the fresh one, a dot and its position).
// An entry whose shadow names another epoch (or none) was filled in a Redis history that may have lost invalidations
// since, and an entry its index does not name is out of a write's reach (Redis evicted the index under memory
// pressure, or an older version filled it): both are misses, and the fill replaces them.
// Replies, per slot, {1, value, pttl, load} | {2} (absent) | {0, stamp, lease or false}.
const lookupManyScript = `${claimSteps}
${shadowSteps}
local guardTtl, leaseTtl, token = ARGV[1], ARGV[2], ARGV[3]
-- one letter per slot: "a" has an absent key, "i" an index, "n" neither
local roles, epoch = ARGV[4], ARGV[5]
local found = {}
for slot = 0, #KEYS / 5 - 1 do
  local entryKey, guardKey, leaseKey, shadowKey = KEYS[slot * 5 + 1], KEYS[slot * 5 + 2], KEYS[slot * 5 + 3], KEYS[slot * 5 + 4]
  local absentOrIndexKey = KEYS[slot * 5 + 5]
  local role = string.sub(roles, slot + 1, slot + 1)
  local value = redis.call("GET", entryKey)
  local shadow = value and readShadow(shadowKey)
  if shadow and shadow.epoch == epoch and (role ~= "i" or redis.call("ZSCORE", absentOrIndexKey, entryKey)) then
    found[slot + 1] = {1, value, redis.call("PTTL", entryKey), shadow.load or 0}
  elseif role == "a" and redis.call("GET", absentOrIndexKey) == epoch then
    found[slot + 1] = {2}
  else
    found[slot + 1] = claim(guardKey, leaseKey, token .. "." .. slot, guardTtl, leaseTtl)
  end
end
return found`

// Fills many slots in one step; per fill nine arguments, and last, once, a lease's life (ms) and the epoch. Each fill
// frees its lease and stores only if its guard still holds its stamp; the guard then lives no longer than what it
// filled, or a lease's life if that is longer (a remembered "not found" lives seconds, and a client asking for ever
// new ids must not size Redis by guards; a fill that a shorter guard voids is safe). The floor is for short-lived
// entries: the next miss of a key read again soon finds its guard and only takes the lease, instead of Redis
// dropping a guard and making it anew with every fill. The shadow is written with the entry: the epoch, when, how
// long the load took, and with a grace period the value again, kept that much longer than the entry. The index is a sorted set scored by when
// an entry's shadow expires (its entry's expiry plus the grace period, the same order): a full index evicts the entry
// that expires first (names of expired entries, scored lowest, go before any live one), its value and shadow too,
// since what the index no longer names could not be invalidated; the index itself lives as long as its longest-lived
// shadow, so a write always reaches every fallback copy. Replies 1 (stored) or 0 (a write got there first) per fill.
const fillManyScript = `
local epoch, guardFloor = ARGV[#ARGV], tonumber(ARGV[#ARGV - 1])
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function fill(k, a)
  -- the target is the entry, or the absent key for a remembered "not found"; the index key repeats the target
  -- when there is none
  local targetKey, guardKey, leaseKey, shadowKey, indexKey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  -- value: the epoch for a remembered absence; lease: "" if none; grace: "" for an absence, which has no shadow;
  -- capacity and the two prefixes: "" unless the entry is indexed
  local value, ttl, stamp, lease, load = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local grace, capacity, entriesPrefix, shadowsPrefix = ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  if lease ~= "" and redis.call("GET", leaseKey) == lease then redis.call("DEL", leaseKey) end
  if redis.call("GET", guardKey) ~= stamp then return 0 end
  redis.call("SET", targetKey, value, "PX", ttl)
  local guardLife = math.max(tonumber(ttl), guardFloor)
  if redis.call("PTTL", guardKey) > guardLife then redis.call("PEXPIRE", guardKey, guardLife) end
  if grace == "" then return 1 end
  local kept = tonumber(ttl) + tonumber(grace)
  local shadow = string.format("%s|%d|%d|%d", epoch, now, tonumber(load), now + tonumber(ttl))
  if tonumber(grace) > 0 then shadow = shadow .. "|" .. value end
  redis.call("SET", shadowKey, shadow, "PX", kept)
  if capacity ~= "" then
    if not redis.call("ZSCORE", indexKey, targetKey) then
      local over = redis.call("ZCARD", indexKey) - tonumber(capacity) + 1
      if over > 0 then
        local evicted = redis.call("ZPOPMIN", indexKey, over)
        for i = 1, #evicted, 2 do
          redis.call("DEL", evicted[i], shadowsPrefix .. string.sub(evicted[i], #entriesPrefix + 1))
        end
      end
    end
    redis.call("ZADD", indexKey, now + kept, targetKey)
    if redis.call("PTTL", indexKey) < kept then redis.call("PEXPIRE", indexKey, kept) end
  end
  return 1
end
local stored = {}
for slot = 0, #KEYS / 5 - 1 do stored[slot + 1] = fill(slot * 5, slot * 9) end
return stored`

// Applies removals in one step. KEYS, per removal: a slot's guards, entries, then the keys also removed (shadows:
// bookkeeping, so not counted); or an index's guard, then the index. ARGV: per removal "k" and its numbers of guards,
// entries and others; or "i", the entries' prefix and the shadows' prefix. An index's removal is one command whose
// work is the entries it names (and their shadows), so neither the rest of the database nor its size can slow it;
// those keys are not in KEYS: right on one Redis, and in a cluster the pages and their index share one hash slot
// (Keys.ts). Replies how many entries each removal found.
const invalidateManyScript = `
local stamp, guardTtl = ARGV[1], ARGV[2]
local k, a, removed = 0, 3, {}
while a <= #ARGV do
  local count = 0
  if ARGV[a] == "k" then
    local guards, entries, others = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    for i = k + 1, k + guards do redis.call("SET", KEYS[i], stamp, "PX", guardTtl) end
    for i = k + guards + 1, k + guards + entries do count = count + redis.call("DEL", KEYS[i]) end
    for i = k + guards + entries + 1, k + guards + entries + others do redis.call("DEL", KEYS[i]) end
    k, a = k + guards + entries + others, a + 4
  else
    local guardKey, indexKey = KEYS[k + 1], KEYS[k + 2]
    local entriesPrefix, shadowsPrefix = ARGV[a + 1], ARGV[a + 2]
    redis.call("SET", guardKey, stamp, "PX", guardTtl)
    for _, key in ipairs(redis.call("ZRANGE", indexKey, 0, -1)) do
      count = count + redis.call("DEL", key)
      redis.call("DEL", shadowsPrefix .. string.sub(key, #entriesPrefix + 1))
    end
    redis.call("DEL", indexKey)
    k, a = k + 2, a + 3
  end
  removed[#removed + 1] = count
end
return removed`

// The fallback copy and its age (ms), unless the index no longer names the entry or the copy was kept under another
// epoch. The index and entry keys are given only for an indexed entry.
const staleScript = `${shadowSteps}
local shadowKey, indexKey, entryKey = KEYS[1], KEYS[2], KEYS[3]
local epoch = ARGV[1]
if indexKey and not redis.call("ZSCORE", indexKey, entryKey) then return false end
local shadow = readShadow(shadowKey)
if not shadow or shadow.copy == "" or shadow.epoch ~= epoch then return false end
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
return {shadow.copy, now - shadow.at}`

/** A slot's five keys, as the many-slot scripts take them: its target, guard, lease, shadow, and absent or index. */
export const pushSlotKeys = (keys: Array<string>, slot: Slot, target: string, fifth: string) =>
  keys.push(target, slot.guard, slot.lease, slot.shadow, fifth)

/** `cacheInvalidateMany`'s key count, keys and arguments for `removals`, every guard moved to `stamp`. */
export const removalInputs = (
  removals: ReadonlyArray<Removal>,
  stamp: string,
  guardTtl: number
): [number, ...Array<string | number>] => {
  const keys: Array<string> = []
  const args: Array<string | number> = [stamp, guardTtl]
  for (const removal of removals) {
    if (removal._tag === "Keys") {
      const { also = [], guards, keys: entries } = removal
      keys.push(...guards, ...entries, ...also)
      args.push("k", guards.length, entries.length, also.length)
    } else {
      keys.push(removal.guard, removal.index.key)
      args.push("i", removal.index.entries, removal.index.shadows)
    }
  }
  return [keys.length, ...keys, ...args]
}

/** One slot's lookup reply: {1, value, pttl, load} | {2} | {0, stamp, lease}. */
export type LookupReply = [0 | 1 | 2, string?, (string | number)?, number?]

/** The scripts, defined on every connection (each node of a cluster loads them on first use). */
export interface Scripts {
  cacheLookupMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<LookupReply>>
  cacheFillMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<0 | 1>>
  cacheInvalidateMany(keyCount: number, ...keysThenArgs: Array<string | number>): Promise<Array<number>>
  cacheStale(keyCount: number, ...keysThenArgs: Array<string>): Promise<[string, number] | null>
  cacheClaim(
    entry: string,
    guard: string,
    lease: string,
    ...args: Array<string | number>
  ): Promise<[0, string, string?]>
}

export type Client = (Redis | Cluster) & Scripts

const scripts: Record<keyof Scripts, { readonly lua: string; readonly numberOfKeys?: number }> = {
  cacheLookupMany: { lua: lookupManyScript },
  cacheFillMany: { lua: fillManyScript },
  cacheInvalidateMany: { lua: invalidateManyScript },
  cacheStale: { lua: staleScript },
  cacheClaim: { lua: claimScript, numberOfKeys: 3 }
}

/**
 * A script on a cluster: EVALSHA, or EVAL where a node does not have it yet. ioredis's auto-pipelining files a
 * command of `defineCommand` under the master of its first argument, for a script of many keys its key count, so
 * one turn's scripts for different masters shared a pipeline that ioredis then refused whole ("All keys in the
 * pipeline should belong to the same slots allocation group"). EVALSHA's keys it knows: each script joins the
 * pipeline of the master its keys live on.
 */
const onCluster = (cluster: Cluster, lua: string, numberOfKeys?: number) => {
  const sha = createHash("sha1").update(lua).digest("hex")
  return (...args: Array<string | number>) => {
    const [keyCount, ...rest] = numberOfKeys === undefined ? args : [numberOfKeys, ...args]
    return cluster
      .evalsha(sha, keyCount!, ...rest)
      .catch((error: unknown) =>
        error instanceof Error && error.message.startsWith("NOSCRIPT")
          ? cluster.eval(lua, keyCount!, ...rest)
          : Promise.reject(error)
      )
  }
}

export const define = (client: Redis | Cluster): Client => {
  for (const [name, { lua, numberOfKeys }] of Object.entries(scripts)) {
    if (client instanceof Cluster) Object.assign(client, { [name]: onCluster(client, lua, numberOfKeys) })
    else client.defineCommand(name, numberOfKeys === undefined ? { lua } : { lua, numberOfKeys })
  }
  return client as Client
}
