// The catalog every instance serves: 1,000 products, seeded through the service's own API.
import { expectOk, inBatches } from "./http.mjs"
import { productCount } from "./settings.mjs"

const seedProduct = (i) => ({
  name: `Bench product ${i}`,
  description: `Product ${i} of the benchmark catalog, a description of ordinary length for a product page.`,
  price: Math.round((5 + ((i * 37) % 2000) + 0.99) * 100) / 100,
  stock: (i * 13) % 500,
  category: ["Electronics", "Books", "Garden", "Toys", "Kitchen", "Sports", "Music", "Office"][i % 8]
})

/** Seeds the service on `port` through POST /api/v1/products: ids 1..productCount, the same data every time. */
export const seed = async (port, { quiet = false } = {}) => {
  if (!quiet) process.stdout.write(`seeding ${productCount} products through POST /api/v1/products ... `)
  await inBatches(productCount, 8, (i) => expectOk(port, "POST", "/api/v1/products", seedProduct(i + 1)))
  const first = await expectOk(port, "GET", "/api/v1/products?offset=0&limit=1")
  if (first.json.total !== productCount || first.json.products[0].id !== 1) {
    throw new Error(`seeding left ${first.json.total} products starting at ${first.json.products[0]?.id}`)
  }
  await expectOk(port, "GET", `/api/v1/products/${productCount}`)
  if (!quiet) console.log("done")
}
