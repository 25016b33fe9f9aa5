import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Effect, Option } from "effect"
import { errorResponse } from "./ErrorResponse.js"

// What the contract takes for a request body, and how it is read before the payload's schema decodes it: at most
// 1 MiB (a chunked body counted as it comes), strictly UTF-8, nested no deeper than JSON decoding can describe.

export const maxBodyBytes = 1024 * 1024

/** A contract body is one flat object; this leaves room for any JSON a client means, far below what breaks decoding. */
export const maxJsonDepth = 64

/**
 * Whether JSON `text` nests objects and arrays deeper than `limit`. Decoding a deeply nested field does not fail
 * cleanly: the error message that describes the value recurses through it and overflows the stack (a 500). So the
 * text is scanned first, one pass without allocating; brackets inside strings do not count.
 */
export const nestsDeeperThan = (text: string, limit: number) => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (inString) {
      if (code === 0x5c)
        i++ // a backslash escapes the next character, a quote included
      else if (code === 0x22) inString = false
    } else if (code === 0x22) inString = true
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > limit) return true
    } else if (code === 0x7d || code === 0x5d) depth--
  }
  return false
}

const tooDeep = () =>
  errorResponse(400, "invalid_request", `the request body must not nest deeper than ${maxJsonDepth} levels`)

export const tooLarge = () =>
  errorResponse(413, "payload_too_large", `the request body must be at most ${maxBodyBytes} bytes`)

// A body that overruns the limit is still read to its end (discarded) up to this much, so the client that is still
// sending gets its 413 instead of a connection reset; past this the connection is cut.
const drainLimitBytes = 16 * maxBodyBytes

/**
 * A chunked body has no length to check up front, and the platform's reader destroys the socket when a body
 * overruns its limit. So such a body is read here, counting, and the request is handed on with the bytes in memory.
 */
export const bufferChunked = (request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<Option.Option<HttpServerRequest.HttpServerRequest>>((resume) => {
    const incoming = NodeHttpServerRequest.toIncomingMessage(request)
    const chunks: Array<Buffer> = []
    let size = 0
    let settled = false
    const settle = (result: Option.Option<HttpServerRequest.HttpServerRequest>) => {
      if (settled) return
      settled = true
      resume(Effect.succeed(result))
    }
    incoming.on("data", (chunk: Buffer) => {
      size += chunk.length
      if (size <= maxBodyBytes) chunks.push(chunk)
      else if (size > drainLimitBytes) incoming.destroy()
    })
    incoming.once("close", () => settle(Option.none()))
    incoming.once("end", () => {
      if (size > maxBodyBytes) return settle(Option.none())
      const headers = new Headers()
      for (const [name, value] of Object.entries(request.headers)) {
        if (name !== "transfer-encoding") headers.set(name, value)
      }
      const body = Buffer.concat(chunks)
      const web = new Request(`http://localhost${request.url}`, { method: request.method, headers, body })
      settle(Option.some(HttpServerRequest.fromWeb(web)))
    })
  })

export const isChunked = (request: HttpServerRequest.HttpServerRequest) =>
  request.headers["content-length"] === undefined && request.headers["transfer-encoding"] !== undefined

export const isJson = (contentType: string | undefined) =>
  contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType.trim())

// The platform decodes a body leniently: bytes that are not UTF-8 (a lone surrogate written as UTF-8, ED A0 80) become
// U+FFFD, which would be stored as if the client had sent it. So the bytes are read and decoded strictly here. The
// BOM is kept, so that a body starting with one stays invalid JSON, as before.
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const lenientUtf8 = new TextDecoder("utf-8", { ignoreBOM: true })

/** The 400 for a body that is not UTF-8, naming the top-level text fields where it is broken when it can. */
const notUtf8 = (bytes: ArrayBuffer) => {
  let fields: Array<string> = []
  try {
    const body: unknown = JSON.parse(lenientUtf8.decode(bytes))
    if (typeof body === "object" && body !== null) {
      fields = Object.entries(body).flatMap(([field, value]) =>
        typeof value === "string" && value.includes("\ufffd") ? [field] : []
      )
    }
  } catch {
    // Not JSON either: the body as a whole is named.
  }
  const what = "is not valid UTF-8 (a broken byte sequence, or a surrogate encoded on its own)"
  return errorResponse(
    400,
    "invalid_request",
    fields.length === 0 ? `the request body ${what}` : fields.map((field) => `${field} ${what}`).join("; ")
  )
}

/** The request with its body already read: `text`, and `json` that reads it, answer from `text`. */
const withText = (request: HttpServerRequest.HttpServerRequest, text: string): HttpServerRequest.HttpServerRequest =>
  Object.create(request, { text: { value: Effect.succeed(text) } })

/** The body is read here, strictly as UTF-8 (the payload's decoding takes it from here), and refused if it nests too deep. */
export const shallowJson = <E, R>(app: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    if (!isJson(request.headers["content-type"])) return app
    return Effect.flatMap(request.arrayBuffer, (bytes) => {
      let text: string
      try {
        text = strictUtf8.decode(bytes)
      } catch {
        return Effect.succeed(notUtf8(bytes))
      }
      if (nestsDeeperThan(text, maxJsonDepth)) return Effect.succeed(tooDeep())
      return Effect.provideService(app, HttpServerRequest.HttpServerRequest, withText(request, text))
    })
  })
