// What HttpApi cannot say in the OpenAPI document it generates from Api.ts, added to it: response headers, the one
// shape of a 400 the service really sends, HEAD wherever GET is, and the 405 that belongs to no operation. Everything
// else in the document comes from the schemas and annotations in Api.ts and Domain/Product.ts.

// The generated document, loosely typed: `OpenApi.Transform` hands it over as a plain record.
type Json = Record<string, any>

interface Header {
  readonly description: string
  readonly required: boolean
  readonly schema: Json
}

export const headers = {
  xCache: {
    description:
      "Whether the answer came from the cache (HIT) or the database (MISS), or, with CACHE_GRACE, from a fallback " +
      "copy of an expired entry because the database failed (STALE; no write has replaced it)",
    required: true,
    schema: { type: "string", enum: ["HIT", "MISS", "STALE"] }
  },
  age: {
    description: "Only with X-Cache: STALE: whole seconds since the answer's value was loaded from the database",
    required: false,
    schema: { type: "integer", minimum: 0 }
  },
  location: {
    description: "The new product's path",
    required: true,
    schema: { type: "string", pattern: "^/api/v1/products/[1-9][0-9]*$", examples: ["/api/v1/products/1"] }
  },
  allow: {
    description: "The methods the path serves",
    required: true,
    schema: { type: "string", examples: ["GET, HEAD, PUT, DELETE"] }
  },
  requestId: {
    description:
      "The caller's X-Request-Id when it is 1–128 printable ASCII characters, else one the service made; the logs " +
      "name the request by it",
    required: true,
    schema: { type: "string", pattern: "^[!-~]{1,128}$" }
  }
} satisfies Record<string, Header>

/** An operation's `OpenApi.Transform`: headers on the responses of the given statuses. */
export const responseHeaders =
  (byStatus: Readonly<Record<number, Readonly<Record<string, Header>>>>) =>
  (operation: Json): Json => {
    for (const [status, added] of Object.entries(byStatus)) {
      const response = operation.responses[status]
      response.headers = { ...response.headers, ...added }
    }
    return operation
  }

const requestIdRef = { $ref: "#/components/headers/X-Request-Id" }
const decodeErrorRef = "#/components/schemas/HttpApiDecodeError"

// HttpApi gives every operation a 400 with its own HttpApiDecodeError body, which the service never sends: the
// contract middleware (Http/Contract.ts) answers InvalidRequest instead. Operations that declare InvalidRequest keep a
// 400 with that body alone; the others cannot answer 400 and lose it.
const contractBadRequest = (operation: Json) => {
  const response = operation.responses["400"]
  if (response === undefined) return
  const schema = response.content["application/json"].schema
  const kept = (schema.anyOf ?? [schema]).filter((branch: Json) => branch.$ref !== decodeErrorRef)
  if (kept.length === 0) delete operation.responses["400"]
  else response.content["application/json"].schema = kept.length === 1 ? kept[0] : { anyOf: kept }
}

const methodsOf = (item: Json) => Object.keys(item)

const operationsOf = (spec: Json): Array<Json> =>
  Object.values(spec.paths).flatMap((item) => Object.values(item as Json))

const methodNotAllowedRef = { $ref: "#/components/responses/MethodNotAllowed" }

/**
 * The router answers HEAD wherever it has a GET: the GET's statuses and headers, never a body. Written out as an
 * operation of its own so that tools (generators, Swagger UI, linters) see it rather than only the prose.
 */
const headOf = (get: Json): Json => {
  const responses = Object.fromEntries(
    Object.entries(get.responses as Json).map(([status, response]) => {
      const { content: _content, ...rest } = response as Json
      return [status, rest]
    })
  )
  const bare = (get.operationId as string).replace(/^get(?=[A-Z])/, "")
  return {
    ...get,
    operationId: `head${bare.charAt(0).toUpperCase()}${bare.slice(1)}`,
    summary: `${get.summary} (headers only)`,
    description: "The GET's status and headers, without a body.",
    responses
  }
}

/** The API's `OpenApi.Transform`, run last. */
export const finish = (spec: Json): Json => {
  // The service has no authentication. HttpApi writes an empty `securitySchemes`, for which Swagger UI offers an
  // "Authorize" button with nothing behind it, and an empty `security` on every operation; one at the root says it
  // once (linters want it said: redocly's security-defined).
  spec.security = []
  delete spec.components.securitySchemes
  for (const operation of operationsOf(spec)) {
    delete operation.security
    contractBadRequest(operation)
    for (const response of Object.values(operation.responses) as Array<Json>) {
      response.headers = { ...response.headers, "X-Request-Id": requestIdRef }
    }
    if (operation.parameters?.length === 0) delete operation.parameters
  }
  for (const item of Object.values(spec.paths) as Array<Json>) {
    if (item.get !== undefined) item.head = headOf(item.get)
    // Every path answers 405 for the methods it does not serve. No operation answers it itself, but OpenAPI has no
    // place for a path's answers other than its operations: listed on each, tools show it where a reader looks.
    for (const method of methodsOf(item)) item[method].responses["405"] = methodNotAllowedRef
  }
  for (const unused of ["HttpApiDecodeError", "Issue", "PropertyKey"]) delete spec.components.schemas[unused]
  spec.components.headers = { "X-Request-Id": headers.requestId }
  spec.components.responses = {
    MethodNotAllowed: {
      description: "This path does not serve the request's method; `Allow` lists the ones it does",
      headers: { Allow: headers.allow, "X-Request-Id": requestIdRef },
      content: { "application/json": { schema: { $ref: "#/components/schemas/MethodNotAllowed" } } }
    }
  }
  return spec
}

export const description = `The HTTP contract of the product catalog.

- **Errors** are JSON \`{"error": "<code>", "message": "<for a person>"}\`; each operation lists the statuses it can
  answer. Besides them, any path answers 404 \`not_found\` when unknown, and 405 \`method_not_allowed\` with an
  \`Allow\` header for a method it does not serve (listed on every operation, \`components.responses.MethodNotAllowed\`).
  408, 417 and 431 come from the server before any route, so any operation may get them; so may a 400 for a request
  that is not valid HTTP/1.1 (an HTTP/1.1 request without \`Host\`, for one).
- **HEAD** is answered wherever GET is (same status and headers, no body), and \`Allow\` lists it.
- **Request bodies** (POST, PUT) must be \`application/json\` (else 415), at most 1 MiB (else 413), one flat object:
  an unknown field is refused with 400, never ignored. Text fields refuse NUL (U+0000) and lone UTF-16 surrogates,
  and a body must be valid UTF-8. The statistics reset takes no body (400 if it has one).
- **Lengths** are in characters, counted as Unicode code points (an emoji is one), as JSON Schema counts them.
- **Ids** are decimal digits only: \`1e3\` or \`1.0\` are refused even though they name integers, and so is any
  \`;\` in a path (matrix parameters) or \`#\` in a request.
- Every answer carries \`X-Request-Id\`: the caller's when it is sane, else one the service made.`

export const eventsDescription = `A stream that stays open: one \`data:\` line of JSON a second (and sooner after a
request when something changed), until the client leaves or the service shuts down. Each event holds:

- \`stats\`: the counters of \`/api/v1/cache/stats\` (summed over the workers, like it);
- \`rates\`: requests per second since the previous event, by kind: \`hit\`, \`miss\` (reads answered with
  \`X-Cache\`), \`cache_error\` (reads the cache failed, answered from the database), \`write\` (POST, PUT, DELETE)
  and \`http_error\` (answers of 400 or more, a 404 aside, and every 5xx);
- \`latency_ms\`: \`hit\` and \`miss\`, each \`{"p50", "p99", "count"}\` over that interval, or \`null\` when
  there were none;
- \`health\`: \`status\`, \`database\`, \`cache\` as \`/health\` reports them, and \`circuit\`, the cache circuit
  breaker (\`closed\`, \`half-open\`, \`open\`);
- \`recent\`: the last requests (\`at\`, \`method\`, \`path\`, \`status\`, \`x_cache\`, \`cache_error\`,
  \`duration_ms\`), the dashboard's own aside.

Requests are recorded only while a feed is open, so nothing is counted before the first event. Beyond
\`DASHBOARD_MAX_FEEDS\` open feeds per process, one more is answered 503 (\`unavailable\`) with \`Retry-After\`.`
