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
  Schema.annotations({
    message: () => "id must be a positive integer",
    // Clients send an integer; the decimal-digits-only spelling is the service's, which JSON Schema cannot say.
    jsonSchema: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER, examples: [1] }
  })
)

/** An ISO-8601 UTC timestamp, as the service writes it. */
export const Timestamp = Schema.String.annotations({
  jsonSchema: { type: "string", format: "date-time", examples: ["2026-11-25T10:30:00.000Z"] }
})

/** The product every example in the OpenAPI document shows. */
export const exampleProduct = {
  id: 1 as ProductId,
  name: "Laptop",
  description: "High-performance laptop",
  price: 999.99,
  stock: 50,
  category: "Electronics",
  created_at: "2026-11-25T10:30:00.000Z",
  updated_at: "2026-11-25T10:30:00.000Z"
}

// Field order here is the order of the JSON a client sees.
export const Product = Schema.Struct({
  id: ProductId.annotations({ jsonSchema: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } }),
  name: Schema.String,
  description: Schema.String,
  price: Schema.Number,
  // Not `Schema.Int`: its identifier "Int" would become a component of the document of its own.
  stock: Schema.Number.pipe(Schema.int()),
  category: Schema.String,
  created_at: Timestamp,
  updated_at: Timestamp
}).annotations({
  identifier: "Product",
  examples: [exampleProduct]
})
export type Product = typeof Product.Type

/** Characters as a person counts them: Unicode code points, as JSON Schema's `maxLength` does (an emoji is one). */
export const codePoints = (text: string) => {
  let count = 0
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i)
    // A high surrogate followed by a low one is a single code point.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) i++
    }
    count++
  }
  return count
}

const maxCharacters =
  (field: string, max: number) =>
  <S extends Schema.Schema<string, string>>(self: S) =>
    self.pipe(
      // UTF-16 units are never fewer than code points, so the count is needed only past `max` units.
      Schema.filter(
        (text: string) => text.length <= max || codePoints(text) <= max || `${field} must be at most ${max} characters`,
        { jsonSchema: { maxLength: max } }
      )
    )

// NUL and lone surrogates (`\ud800` in JSON, which is not text) would be stored differently by each database:
// PostgreSQL refuses a NUL (a 500), and both write a lone surrogate as U+FFFD. Refused here, naming the field, so
// every database stores exactly what a client sent. With the `u` flag a paired surrogate is one code point (an
// emoji), outside the class.
const notText = /[\u0000\ud800-\udfff]/u
const notTextClass = "\\u0000\\ud800-\\udfff"

const textOnly =
  (field: string) =>
  <S extends Schema.Schema<string, string>>(self: S) =>
    self.pipe(
      Schema.filter(
        (text: string) =>
          !notText.test(text) ||
          (text.includes("\u0000")
            ? `${field} must not contain NUL (U+0000)`
            : `${field} must not contain a lone UTF-16 surrogate (not a character)`),
        { jsonSchema: { pattern: `^[^${notTextClass}]*$` } }
      )
    )

// The trimmed length is what is counted, which a JSON Schema can only say as a pattern: optional whitespace, then
// 1–255 characters that start and end with a non-whitespace one (`\s` is exactly what String.prototype.trim removes).
const Name = Schema.Trim.pipe(
  Schema.minLength(1, { message: () => "name must not be empty" }),
  maxCharacters("name", 255),
  textOnly("name"),
  Schema.annotations({
    jsonSchema: {
      type: "string",
      description:
        "1–255 characters (Unicode code points) once surrounding whitespace is trimmed; stored trimmed; no NUL " +
        "(U+0000) or lone surrogate",
      pattern: `^\\s*[^\\s${notTextClass}](?:[^${notTextClass}]{0,253}[^\\s${notTextClass}])?\\s*$`,
      examples: ["Laptop"]
    }
  })
)
const Description = Schema.String.pipe(maxCharacters("description", 1000), textOnly("description"))
// A JSON number past the largest double (1e400) parses as Infinity: JSON Schema says that as a maximum.
const Price = Schema.Number.pipe(
  Schema.finite({ message: () => "price must be a finite number", jsonSchema: { maximum: Number.MAX_VALUE } }),
  Schema.positive({ message: () => "price must be greater than 0" })
)
// Checked apart: Schema.int is "a safe integer", so 2^53 would otherwise be refused as "not an integer".
const Stock = Schema.Number.pipe(
  Schema.filter((n) => Number.isInteger(n) || "stock must be an integer"),
  Schema.filter((n) => n <= Number.MAX_SAFE_INTEGER || `stock is too large (at most ${Number.MAX_SAFE_INTEGER})`),
  Schema.nonNegative({ message: () => "stock must be 0 or more" }),
  Schema.annotations({ jsonSchema: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER } })
)
const Category = Schema.String.pipe(maxCharacters("category", 100), textOnly("category"))

// A typo such as `prize` must never be silently dropped, and `id`/timestamps belong to the service.
const strict = { parseOptions: { onExcessProperty: "error" } } as const

export const CreateProduct = Schema.Struct({
  name: Name,
  description: Schema.optionalWith(Description, { default: () => "" }),
  price: Price,
  stock: Schema.optionalWith(Stock, { default: () => 0 }),
  category: Schema.optionalWith(Category, { default: () => "" })
}).annotations({
  ...strict,
  identifier: "CreateProduct",
  examples: [
    { name: "Laptop", description: "High-performance laptop", price: 999.99, stock: 50, category: "Electronics" }
  ]
})
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
    Schema.filter((body) => Object.keys(body).length > 0 || "an update must change at least one field", {
      jsonSchema: { minProperties: 1 }
    }),
    Schema.annotations({ identifier: "UpdateProduct", examples: [{ price: 899.99, stock: 45 }] })
  )
export type UpdateProduct = typeof UpdateProduct.Type

/** The cached value of a list page: the contract fixes this shape. */
export const ProductPage = Schema.Struct({
  products: Schema.Array(Product),
  total: Schema.Int
})
export type ProductPage = typeof ProductPage.Type

export class ProductNotFound extends Data.TaggedError("ProductNotFound")<{ readonly id: ProductId }> {}
