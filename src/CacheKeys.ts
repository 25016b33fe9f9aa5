import type { Slot } from "./Cache.js"
import type { ProductId } from "./Domain/Product.js"

/**
 * Key names. The contract's (`product:id:1`, `product:list:0:20`) hold the values; the service's own bookkeeping
 * (guards, leases, remembered "not found"s) lives under `<prefix>guard:`, `<prefix>lease:` and `<prefix>absent:`,
 * so a pattern on the contract's keys never matches it.
 */
export interface CacheKeys {
  readonly product: (id: ProductId) => Slot
  readonly page: (offset: number, limit: number) => Slot
  readonly listPattern: string
  readonly listGuard: string
}

// Glob metacharacters in a configured prefix must match literally in SCAN patterns.
const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, "\\$&")

export const make = (prefix: string): CacheKeys => ({
  product: (id) => ({
    key: `${prefix}id:${id}`,
    guard: `${prefix}guard:id:${id}`,
    lease: `${prefix}lease:id:${id}`,
    absent: `${prefix}absent:id:${id}`
  }),
  page: (offset, limit) => ({
    key: `${prefix}list:${offset}:${limit}`,
    guard: `${prefix}guard:list`,
    lease: `${prefix}lease:list:${offset}:${limit}`
  }),
  listPattern: `${escapeGlob(prefix)}list:*`,
  listGuard: `${prefix}guard:list`
})
