import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { createHash } from "node:crypto"

/**
 * On every answer, whoever writes it: a browser must take the declared Content-Type at its word, so a JSON body that
 * holds markup (a product's description, say) is never sniffed into a page.
 */
export const securityHeaders = { "x-content-type-options": "nosniff" } as const

const hash = (source: string) => `'sha256-${createHash("sha256").update(source, "utf8").digest("base64")}'`

// The executable inline blocks of a page; a `type="application/json"` script is data, never run.
const inlineScripts = /<script(?![^>]*\btype="application\/json")[^>]*>([\s\S]*?)<\/script>/gi
const inlineStyles = /<style[^>]*>([\s\S]*?)<\/style>/gi

/**
 * A Content-Security-Policy for an HTML page that allows exactly the page's own inline scripts and styles, by hash,
 * and nothing from elsewhere: no other script can run in it, whatever markup a value smuggles in. Images may be
 * data URIs (Swagger UI's CSS has some), requests go to this origin only ("Try it out").
 */
export const htmlPolicy = (html: string) => {
  const scripts = [...html.matchAll(inlineScripts)].map((match) => hash(match[1]!))
  const styles = [...html.matchAll(inlineStyles)].map((match) => hash(match[1]!))
  return [
    "default-src 'none'",
    `script-src ${scripts.length === 0 ? "'none'" : scripts.join(" ")}`,
    `style-src ${styles.length === 0 ? "'none'" : styles.join(" ")}`,
    "img-src data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join("; ")
}

// The pages are built once (Swagger UI's at start), so their policies are computed once per body.
const htmlHeaders = new WeakMap<Uint8Array, Readonly<Record<string, string>>>()

/** The headers an answer gets: `securityHeaders`, and for an HTML page its policy unless it brings its own. */
export const forResponse = (response: HttpServerResponse.HttpServerResponse): Readonly<Record<string, string>> => {
  const body = response.body
  if (body._tag !== "Uint8Array" || !body.contentType.startsWith("text/html")) return securityHeaders
  if (response.headers["content-security-policy"] !== undefined) return securityHeaders
  let headers = htmlHeaders.get(body.body)
  if (headers === undefined) {
    const policy = htmlPolicy(new TextDecoder().decode(body.body))
    headers = { ...securityHeaders, "content-security-policy": policy }
    htmlHeaders.set(body.body, headers)
  }
  return headers
}
