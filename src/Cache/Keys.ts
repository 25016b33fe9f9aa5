import { defaultMaxPages } from "../AppConfig.js"
import type { Index, Slot } from "../Cache.js"
import type { ProductId } from "../Domain/Product.js"

/**
 * Key names. The contract's (`product:id:1`, `product:list:0:20`) hold the values; the service's own bookkeeping
 * (guards, leases, remembered "not found"s, shadows, the index of list pages) lives under `<prefix>guard:`,
 * `<prefix>lease:`, `<prefix>absent:`, `<prefix>shadow:` and `<prefix>index:`, so a pattern on the contract's keys
 * never matches it.
 */
export interface CacheKeys {
  readonly product: (id: ProductId) => Slot
  readonly page: (offset: number, limit: number) => Slot
  /** Names every cached page: what a write removes, and the key its pending invalidation is recorded under. */
  readonly listIndex: Index
  readonly listGuard: string
}

export interface KeyOptions {
  readonly maxPages?: number
  /**
   * Hash tags for a Redis Cluster: every key of one product shares the tag `{id:<id>}`, every page and the index
   * `{list}`, so that each script touches one hash slot (`product:{id:1}`, `product:{list}:0:20`, the contract's).
   */
  readonly tagged?: boolean
}

export const make = (prefix: string, options: KeyOptions = {}): CacheKeys => {
  const tag = (name: string) => (options.tagged === true ? `{${name}}` : name)
  const list = tag("list")
  const listIndex: Index = {
    key: `${prefix}index:${list}`,
    capacity: options.maxPages ?? defaultMaxPages,
    entries: `${prefix}${list}:`,
    shadows: `${prefix}shadow:${list}:`
  }
  return {
    product: (id) => {
      const one = tag(`id:${id}`)
      return {
        key: `${prefix}${one}`,
        guard: `${prefix}guard:${one}`,
        lease: `${prefix}lease:${one}`,
        shadow: `${prefix}shadow:${one}`,
        absent: `${prefix}absent:${one}`
      }
    },
    page: (offset, limit) => ({
      key: `${prefix}${list}:${offset}:${limit}`,
      guard: `${prefix}guard:${list}`,
      lease: `${prefix}lease:${list}:${offset}:${limit}`,
      shadow: `${prefix}shadow:${list}:${offset}:${limit}`,
      index: listIndex
    }),
    listIndex,
    listGuard: `${prefix}guard:${list}`
  }
}
