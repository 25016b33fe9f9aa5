import { Ajv2020 } from "ajv/dist/2020.js"
import type { ValidateFunction } from "ajv/dist/2020.js"
import ajvFormats from "ajv-formats"
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { TestApp } from "./TestApp.js"

// Judges an exchange with the service by its own OpenAPI document (`/docs/openapi.json`), with a JSON Schema 2020-12
// validator (OpenAPI 3.1's dialect): does the answer match what the document says (status, headers, body), and does
// the document accept the request? The document's schemas are used as they are, `$ref`s into it included.

type Json = Record<string, any>

export interface Exchange {
  readonly method: string
  /** As sent: percent-encoded, with its query. */
  readonly path: string
  readonly requestHeaders: Readonly<Record<string, string>>
  readonly requestBody: string | undefined
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

export interface RequestVerdict {
  /** Why the document refuses the request; empty when it accepts it. */
  readonly problems: ReadonlyArray<string>
  /** Values whose spelling the service refuses but JSON Schema cannot (`1e3` for an integer). */
  readonly inexpressible: ReadonlyArray<string>
}

const documentId = "openapi.json"
// Headers whose presence the document must declare wherever they appear.
const describedHeaders = ["age", "allow", "location", "x-cache", "x-request-id"]

const pointer = (...segments: ReadonlyArray<string>) =>
  segments.map((segment) => "/" + segment.replace(/~/g, "~0").replace(/\//g, "~1")).join("")

const mediaType = (contentType: string | null | undefined) => (contentType ?? "").split(";")[0]!.trim().toLowerCase()

const newAjv = (coerceTypes: boolean) => {
  const ajv = new Ajv2020({ strict: false, allErrors: true, coerceTypes })
  ;(ajvFormats as unknown as (ajv: Ajv2020) => void)(ajv)
  return ajv
}

export const make = (document: Json) => {
  const ajv = newAjv(false)
  ajv.addSchema(document, documentId)
  // Path and query values arrive as text; OpenAPI's simple style means "1" is the integer 1.
  const coercing = newAjv(true)
  const compiled = new Map<string, ValidateFunction>()
  const schemaAt = (at: string) => {
    let validate = compiled.get(at)
    if (validate === undefined) {
      validate = ajv.compile({ $ref: `${documentId}#${at}` })
      compiled.set(at, validate)
    }
    return validate
  }
  const parameterChecks = new WeakMap<object, ValidateFunction>()
  const parameterCheck = (schema: Json) => {
    let validate = parameterChecks.get(schema)
    if (validate === undefined) {
      validate = coercing.compile({ type: "object", properties: { value: schema } })
      parameterChecks.set(schema, validate)
    }
    return validate
  }
  const errorsOf = (validate: ValidateFunction) => ajv.errorsText(validate.errors, { dataVar: "" })
  const resolve = (object: Json): Json =>
    typeof object.$ref === "string"
      ? (object.$ref as string)
          .slice(2)
          .split("/")
          .reduce((at: Json, key) => at[key.replace(/~1/g, "/").replace(/~0/g, "~")], document)
      : object

  const templates = Object.keys(document.paths).map((template) => ({
    template,
    pattern: new RegExp("^" + template.replace(/\{[^}]+\}/g, "([^/]+)") + "$"),
    names: [...template.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]!)
  }))

  const locate = (method: string, path: string) => {
    const bare = path.split("?")[0]!
    for (const { names, pattern, template } of templates) {
      const match = pattern.exec(bare)
      if (match === null) continue
      const item = document.paths[template] as Json
      const name = method.toLowerCase()
      const params = Object.fromEntries(names.map((param, i) => [param, match[i + 1]!]))
      return { template, item, operation: item[name] as Json | undefined, at: pointer("paths", template, name), params }
    }
    return undefined
  }

  // `bodyAt` gives the pointer to the schema of a declared content type.
  const checkResponse = (response: Json, bodyAt: (key: string) => string, exchange: Exchange): Array<string> => {
    const problems: Array<string> = []
    const declared = Object.fromEntries(
      Object.entries((response.headers ?? {}) as Json).map(([name, header]) => [name.toLowerCase(), resolve(header)])
    )
    for (const [name, header] of Object.entries(declared)) {
      const value = exchange.headers.get(name)
      if (value === null) {
        if (header.required === true) problems.push(`required header ${name} is missing`)
        continue
      }
      const validate = parameterCheck(header.schema)
      if (!validate({ value })) problems.push(`header ${name}: ${value} ${errorsOf(validate)}`)
    }
    for (const name of describedHeaders) {
      if (exchange.headers.has(name) && declared[name] === undefined) problems.push(`undeclared header ${name}`)
    }
    const content = response.content as Json | undefined
    if (content === undefined) {
      if (exchange.text !== "") problems.push(`a body where the document declares none: ${exchange.text.slice(0, 80)}`)
      return problems
    }
    if (exchange.method === "HEAD") return problems
    const type = mediaType(exchange.headers.get("content-type"))
    const key = Object.keys(content).find((declaredType) => mediaType(declaredType) === type)
    if (key === undefined) return [...problems, `content type ${type} is not one of ${Object.keys(content).join(", ")}`]
    let body: unknown = exchange.text
    if (type === "application/json") {
      try {
        body = JSON.parse(exchange.text)
      } catch {
        return [...problems, "the body is not JSON"]
      }
    }
    const validate = schemaAt(bodyAt(key))
    if (!validate(body)) problems.push(`body: ${errorsOf(validate)}`)
    return problems
  }

  /** Where the answer departs from the document; empty when it matches. */
  const responseProblems = (exchange: Exchange): Array<string> => {
    const found = locate(exchange.method, exchange.path)
    if (found === undefined) {
      // The document's description: an unknown path answers 404 not_found.
      if (exchange.status !== 404) return [`${exchange.status} for a path the document does not have`]
      const unknownPath = {
        headers: { "X-Request-Id": { $ref: "#/components/headers/X-Request-Id" } },
        content: { "application/json": {} }
      }
      return checkResponse(unknownPath, () => pointer("components", "schemas", "NotFound"), exchange)
    }
    if (found.operation === undefined) {
      const allowed = Object.keys(found.item)
        .map((method) => method.toUpperCase())
        .sort()
      const allow = (exchange.headers.get("allow") ?? "")
        .split(",")
        .map((method) => method.trim())
        .sort()
      const problems = checkResponse(
        resolve({ $ref: "#/components/responses/MethodNotAllowed" }),
        (key) => pointer("components", "responses", "MethodNotAllowed", "content", key, "schema"),
        exchange
      )
      if (exchange.status !== 405) problems.push(`${exchange.status} where the document has no such operation`)
      if (allow.join() !== allowed.join()) problems.push(`Allow lists ${allow.join()}, the document ${allowed.join()}`)
      return problems
    }
    const status = String(exchange.status)
    const response = found.operation.responses[status]
    if (response === undefined) {
      return [`status ${status} is not documented for ${exchange.method} ${found.template}`]
    }
    // A response may be a `$ref` to components.responses (the 405): its schemas are read where it points.
    const at = typeof response.$ref === "string" ? response.$ref.slice(1) : `${found.at}${pointer("responses", status)}`
    return checkResponse(resolve(response), (key) => `${at}${pointer("content", key, "schema")}`, exchange)
  }

  /** Whether the document accepts the request; `undefined` when it describes no such operation. */
  const requestVerdict = (exchange: Exchange): RequestVerdict | undefined => {
    const found = locate(exchange.method, exchange.path)
    if (found?.operation === undefined) return undefined
    const problems: Array<string> = []
    const inexpressible: Array<string> = []
    const query = new URLSearchParams(exchange.path.split("?")[1] ?? "")
    for (const parameter of (found.operation.parameters ?? []) as Array<Json>) {
      let value: string | null
      try {
        value =
          parameter.in === "path"
            ? decodeURIComponent(found.params[parameter.name] ?? "")
            : parameter.in === "query"
              ? query.get(parameter.name)
              : null
      } catch {
        problems.push(`${parameter.in} ${parameter.name}: not valid percent-encoding`)
        continue
      }
      if (value === null) {
        if (parameter.required === true) problems.push(`${parameter.in} ${parameter.name} is required`)
        continue
      }
      const validate = parameterCheck(parameter.schema)
      if (!validate({ value })) problems.push(`${parameter.in} ${parameter.name}: ${errorsOf(validate)}`)
      else if (parameter.schema.type === "integer" && !/^[0-9]+$/.test(value)) inexpressible.push(value)
    }
    const body = found.operation.requestBody as Json | undefined
    if (body === undefined && (exchange.requestBody ?? "") !== "") problems.push("a body where the document takes none")
    if (body !== undefined) {
      const type = mediaType(exchange.requestHeaders["content-type"])
      const key = Object.keys(body.content).find((declaredType) => mediaType(declaredType) === type)
      if (key === undefined) problems.push(`request content type "${type}" is not one the document accepts`)
      else {
        try {
          const validate = schemaAt(`${found.at}${pointer("requestBody", "content", key, "schema")}`)
          if (!validate(JSON.parse(exchange.requestBody ?? ""))) problems.push(`request body: ${errorsOf(validate)}`)
        } catch {
          problems.push("the request body is not JSON")
        }
      }
    }
    return { problems, inexpressible }
  }

  /** Every schema in the document that carries `examples`, with what its own schema says of each. */
  const examples = () => {
    const found: Array<{ readonly at: string; readonly problems: ReadonlyArray<string> }> = []
    const walk = (node: unknown, at: string) => {
      if (typeof node !== "object" || node === null) return
      const schema = node as Json
      if (Array.isArray(schema.examples) && ("type" in schema || "properties" in schema)) {
        const validate = schemaAt(at)
        const problems = schema.examples.flatMap((example: unknown) => (validate(example) ? [] : [errorsOf(validate)]))
        found.push({ at, problems })
      }
      for (const [key, child] of Object.entries(schema)) if (key !== "examples") walk(child, at + pointer(key))
    }
    walk(document.paths, pointer("paths"))
    walk(document.components, pointer("components"))
    return found
  }

  return { responseProblems, requestVerdict, examples }
}

export type OpenApiCheck = ReturnType<typeof make>

// One checker per document text: every test's app serves the same document, compiled once.
const checkers = new Map<string, OpenApiCheck>()
const checkerOf = (text: string) => {
  let checker = checkers.get(text)
  if (checker === undefined) {
    checker = make(JSON.parse(text))
    checkers.set(text, checker)
  }
  return checker
}

/**
 * Every reply is checked against the app's own `/docs/openapi.json`: the answer (status, headers, body) is one the
 * document describes; a request the service took, the document accepts; one it refused as invalid, the document
 * refuses too, unless JSON Schema cannot say the rule (an integer spelled `1e3`).
 */
export const expectDocumented = (checker: OpenApiCheck, exchange: Exchange) => {
  if (exchange.path.startsWith("/docs")) return
  const label = `${exchange.method} ${exchange.path} -> ${exchange.status} ${exchange.text.slice(0, 200)}`
  expect(checker.responseProblems(exchange), `the document does not describe ${label}`).toEqual([])
  const verdict = checker.requestVerdict(exchange)
  if (verdict === undefined) return
  const taken = exchange.status < 300 || (exchange.status === 404 && exchange.text.includes('"product '))
  if (taken) expect(verdict.problems, `the document refuses a request the service took: ${label}`).toEqual([])
  const refused = exchange.status === 400 || exchange.status === 415
  if (refused && verdict.inexpressible.length === 0) {
    expect(verdict.problems, `the document accepts a request the service refused: ${label}`).not.toEqual([])
  }
}

/** The checker for the document the app serves. */
export const ofApp = (app: TestApp) => Effect.map(app.get("/docs/openapi.json"), (reply) => checkerOf(reply.text))
