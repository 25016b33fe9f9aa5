import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import * as Fs from "node:fs/promises"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { errorResponse } from "../Http/ErrorResponse.js"
import { dashboardPaths } from "../Http/Endpoints.js"

const dashboardPath = dashboardPaths.page

/**
 * Scripts and styles from this origin only, none inline: whatever markup a product's name smuggles into the page,
 * nothing can run it, and nothing is fetched from elsewhere (the page works offline).
 */
export const policy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

// Next to this module in src/ and, copied by `npm run build`, in dist/.
const staticDir = fileURLToPath(new URL("./static/", import.meta.url))
const require = createRequire(import.meta.url)

const contentTypes = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8"
} as const

/** The page's files: its own from `static/`, uPlot's straight from its installed package. */
const files: ReadonlyArray<{
  readonly path: `/${string}`
  readonly file: string
  readonly type: keyof typeof contentTypes
}> = [
  { path: dashboardPath, file: staticDir + "index.html", type: "html" },
  { path: `${dashboardPath}/app.js`, file: staticDir + "app.js", type: "js" },
  { path: `${dashboardPath}/style.css`, file: staticDir + "style.css", type: "css" },
  { path: `${dashboardPath}/uPlot.min.js`, file: require.resolve("uplot/dist/uPlot.iife.min.js"), type: "js" },
  { path: `${dashboardPath}/uPlot.min.css`, file: require.resolve("uplot/dist/uPlot.min.css"), type: "css" }
]

/** GET /dashboard, its files, and GET / pointing to it; read once at start. */
export const PageLive = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    for (const { file, path, type } of files) {
      const body = yield* Effect.promise(() => Fs.readFile(file))
      const headers: Record<string, string> =
        type === "html"
          ? { "cache-control": "no-cache", "content-security-policy": policy }
          : { "cache-control": "no-cache" }
      yield* router.get(
        path,
        Effect.succeed(HttpServerResponse.uint8Array(body, { contentType: contentTypes[type], headers }))
      )
    }
    // A browser asking for `/` is sent to the page; any other client gets the contract's 404 for an unknown route.
    yield* router.get(
      "/",
      Effect.map(HttpServerRequest.HttpServerRequest, (request) =>
        (request.headers["accept"] ?? "").includes("text/html")
          ? HttpServerResponse.redirect(dashboardPath, { status: 302 })
          : errorResponse(404, "not_found", `no route for ${request.method} /`)
      )
    )
  })
)
