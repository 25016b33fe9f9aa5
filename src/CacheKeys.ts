import type { ProductId } from "./Domain/Product.js"

/** Key names of the contract (`product:id:1`, `product:list:0:20`) and the guards beside them. */
export interface CacheKeys {
  readonly id: (id: ProductId) => string
  readonly idGuard: (id: ProductId) => string
  readonly list: (offset: number, limit: number) => string
  readonly listPattern: string
  readonly listGuard: string
}

// Glob metacharacters in a configured prefix must match literally in SCAN patterns.
const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, "\\$&")

export const make = (prefix: string): CacheKeys => ({
  id: (id) => `${prefix}id:${id}`,
  idGuard: (id) => `${prefix}guard:id:${id}`,
  list: (offset, limit) => `${prefix}list:${offset}:${limit}`,
  listPattern: `${escapeGlob(prefix)}list:*`,
  listGuard: `${prefix}guard:list`
})
