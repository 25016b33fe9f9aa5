import { describe, expect, it } from "@effect/vitest"
import { Either, Option, Schema } from "effect"
import { Api } from "../src/Api.js"
import * as RouteTable from "../src/Http/RouteTable.js"

// The fast path's route table is read off the HttpApi: these fail when the two disagree, so a route added to the Api
// is either served by the fast path by the same description or named as left to the HttpApi app, never answered
// differently in silence.

const endpointNamed = (name: string) => RouteTable.endpoints.find((entry) => entry.name === name)!.endpoint

describe("the fast path's route table", () => {
  it("names every endpoint of the Api once: served by the fast path, or left to the HttpApi app", () => {
    const names = Object.values(Api.groups).flatMap((group) =>
      Object.values(group.endpoints).map((endpoint) => `${group.identifier}.${endpoint.name}`)
    )
    const fast: ReadonlyArray<string> = RouteTable.fastOperations
    const left = Object.keys(RouteTable.leftToPlatform)
    expect([...fast, ...left].sort()).toEqual([...names].sort())
    expect(fast.filter((name) => left.includes(name))).toEqual([])
  })

  it("serves each of its operations with the endpoint's method, path and success status", () => {
    const served = [...RouteTable.routes.values()].flat()
    // An operation whose endpoint gained a middleware the fast path does not do itself drops out of the table.
    expect(served.map((route) => route.operation).sort()).toEqual([...RouteTable.fastOperations].sort())
    for (const route of served) {
      const endpoint = endpointNamed(route.operation)
      expect([route.method, route.template], route.operation).toEqual([endpoint.method, endpoint.path])
      expect(route.payload !== undefined, route.operation).toBe(Option.isSome(endpoint.payloadSchema))
    }
    expect(served.find((route) => route.operation === "products.create")!.successStatus).toBe(201)
    expect(served.find((route) => route.operation === "products.update")!.successStatus).toBe(200)
  })

  it("takes only the canonical spelling of a request, decoded by the endpoint's own schemas", () => {
    const taken = (method: string, url: string) => {
      const found = RouteTable.find(method, url)
      return found === undefined ? undefined : { operation: found.route.operation, ...found.path, ...found.urlParams }
    }
    expect(taken("GET", "/api/v1/products/42")).toEqual({ operation: "products.get", id: 42 })
    expect(taken("PUT", "/api/v1/products/42")).toEqual({ operation: "products.update", id: 42 })
    expect(taken("DELETE", "/api/v1/products/42")).toEqual({ operation: "products.remove", id: 42 })
    expect(taken("POST", "/api/v1/products")).toEqual({ operation: "products.create" })
    expect(taken("GET", "/api/v1/products")).toEqual({ operation: "products.list", offset: 0, limit: 20 })
    expect(taken("GET", "/api/v1/products?offset=1&limit=500")).toEqual({
      operation: "products.list",
      offset: 1,
      limit: 500
    })
    expect(taken("GET", "/api/v1/products?limit=5")).toEqual({ operation: "products.list", offset: 0, limit: 5 })
    // Other spellings, refusals and other methods: all left to the HttpApi app.
    for (const [method, url] of [
      ["GET", "/api/v1/products/042"],
      ["GET", "/api/v1/products/0"],
      ["GET", "/api/v1/products/%34%32"],
      ["GET", "/api/v1/products/42/"],
      ["GET", "/api/v1/products/42;x"],
      ["GET", "/api/v1/products/42?x=1"],
      ["GET", "/api/v1/products/9007199254740992"],
      ["GET", "/api/v1/products?"],
      ["GET", "/api/v1/products?limit=5&offset=1"],
      ["GET", "/api/v1/products?offset=01"],
      ["GET", "/api/v1/products?offset=1&offset=1"],
      ["GET", "/api/v1/products?limit=0"],
      ["GET", "/api/v1/products?limit=5#a"],
      ["GET", "/api/v1/products?x=1"],
      ["GET", "/api/v1/products/"],
      ["HEAD", "/api/v1/products/42"],
      ["PATCH", "/api/v1/products/42"],
      ["POST", "/api/v1/products/42"],
      ["GET", "/health"],
      ["GET", "/api/v1/cache/stats"]
    ] as const)
      expect(taken(method, url), `${method} ${url}`).toBeUndefined()
  })

  it("takes an id exactly when the endpoint's schema decodes it and encodes it back the same", () => {
    const pathSchema = Option.getOrThrow(endpointNamed("products.get").pathSchema) as Schema.Schema<any, any>
    const spellings = ["1", "7", "10", "99", "0", "00", "01", "1e3", "1.0", "-1", " 1", "+1", "x", "", "9".repeat(16)]
    for (const id of [...spellings, String(Number.MAX_SAFE_INTEGER), String(Number.MAX_SAFE_INTEGER + 1)]) {
      const decoded = Schema.decodeUnknownEither(pathSchema)({ id })
      const canonical = Either.isRight(decoded) && String(decoded.right.id) === id
      expect(RouteTable.find("GET", `/api/v1/products/${id}`) !== undefined, id).toBe(canonical)
    }
  })
})
