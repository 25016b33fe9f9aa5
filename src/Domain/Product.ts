import { Data, Schema } from "effect"

export const ProductId = Schema.Int.pipe(Schema.positive(), Schema.brand("ProductId"))
export type ProductId = typeof ProductId.Type

/** A path id: decimal digits only (no `1e3`, `1.5`, `-1`), positive, within the safe-integer range. */
export const ProductIdFromString = Schema.String.pipe(
  Schema.pattern(/^[0-9]{1,16}$/, { message: () => "id must be a positive integer" }),
  Schema.compose(Schema.NumberFromString),
  Schema.filter(
    (n) => (n >= 1 && n <= Number.MAX_SAFE_INTEGER) || "id must be a positive integer up to 9007199254740991"
  ),
  Schema.compose(ProductId, { strict: false }),
  Schema.annotations({ message: () => "id must be a positive integer" })
)

// Field order here is the order of the JSON a client sees.
export const Product = Schema.Struct({
  id: ProductId,
  name: Schema.String,
  description: Schema.String,
  price: Schema.Number,
  stock: Schema.Int,
  category: Schema.String,
  created_at: Schema.String,
  updated_at: Schema.String
})
export type Product = typeof Product.Type

const Name = Schema.Trim.pipe(
  Schema.minLength(1, { message: () => "name must not be empty" }),
  Schema.maxLength(255, { message: () => "name must be at most 255 characters" })
)
const Description = Schema.String.pipe(
  Schema.maxLength(1000, { message: () => "description must be at most 1000 characters" })
)
const Price = Schema.Number.pipe(
  Schema.finite({ message: () => "price must be a finite number" }),
  Schema.positive({ message: () => "price must be greater than 0" })
)
const Stock = Schema.Number.pipe(
  Schema.int({ message: () => "stock must be an integer" }),
  Schema.nonNegative({ message: () => "stock must be 0 or more" })
)
const Category = Schema.String.pipe(Schema.maxLength(100, { message: () => "category must be at most 100 characters" }))

// A typo such as `prize` must never be silently dropped, and `id`/timestamps belong to the service.
const strict = { parseOptions: { onExcessProperty: "error" } } as const

export const CreateProduct = Schema.Struct({
  name: Name,
  description: Schema.optionalWith(Description, { default: () => "" }),
  price: Price,
  stock: Schema.optionalWith(Stock, { default: () => 0 }),
  category: Schema.optionalWith(Category, { default: () => "" })
}).annotations({ ...strict, identifier: "CreateProduct" })
export type CreateProduct = typeof CreateProduct.Type

export const UpdateProduct = Schema.Struct({
  name: Schema.optionalWith(Name, { exact: true }),
  description: Schema.optionalWith(Description, { exact: true }),
  price: Schema.optionalWith(Price, { exact: true }),
  stock: Schema.optionalWith(Stock, { exact: true }),
  category: Schema.optionalWith(Category, { exact: true })
})
  .annotations(strict)
  .pipe(
    Schema.filter((body) => Object.keys(body).length > 0 || "an update must change at least one field"),
    Schema.annotations({ identifier: "UpdateProduct" })
  )
export type UpdateProduct = typeof UpdateProduct.Type

/** The cached value of a list page: the contract fixes this shape. */
export const ProductPage = Schema.Struct({
  products: Schema.Array(Product),
  total: Schema.Int
})
export type ProductPage = typeof ProductPage.Type

export class ProductNotFound extends Data.TaggedError("ProductNotFound")<{ readonly id: ProductId }> {}
