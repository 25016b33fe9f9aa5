import type { Product } from "../Domain/Product.js"

// The bodies of the three writes' successes, written once for both the HttpApi handlers (Products.ts) and the fast
// path (FastPath.ts). As for the reads (ReadAnswers.ts), text in the contract's field order; the success schemas in
// Api.ts describe them for OpenAPI.

export const created = (product: Product) => JSON.stringify({ message: "Product created successfully", product })

export const locationOf = (product: Product) => `/api/v1/products/${product.id}`

export const updated = (product: Product) =>
  JSON.stringify({ message: "Product updated successfully, cache invalidated", product })

export const deleted = JSON.stringify({ message: "Product deleted successfully, cache invalidated" })
