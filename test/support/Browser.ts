import { Effect } from "effect"
import type { Scope } from "effect"
import { chromium } from "playwright-core"
import type { Browser, Page } from "playwright-core"

// Debian's chromium driven by playwright-core (no browser download): CI installs it with apt-get like redis-server.
export const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

// Nothing of its own on the network (no updates, sync, field trials), and no sandbox: CI runs as root in a container.
const args = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage"
]

/** A headless chromium closed with the scope. */
export const launch: Effect.Effect<Browser, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() => chromium.launch({ executablePath, args, headless: true, timeout: 30_000 })),
  (browser) => Effect.promise(() => browser.close().catch(() => undefined))
)

export interface Watched {
  readonly page: Page
  /** Console errors, uncaught exceptions and dialogs (an `alert` means a script ran that should not have). */
  readonly problems: Array<string>
  /** Every URL the page asked for that is not on `origin` (data: URIs aside). */
  readonly elsewhere: Array<string>
}

/** A fresh page (own context) that records what went wrong on it; closed with the scope. */
export const watchedPage = (
  browser: Browser,
  origin: string,
  options: { readonly width?: number; readonly height?: number; readonly colorScheme?: "light" | "dark" } = {}
): Effect.Effect<Watched, never, Scope.Scope> =>
  Effect.gen(function* () {
    const context = yield* Effect.acquireRelease(
      Effect.promise(() =>
        browser.newContext({
          viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
          colorScheme: options.colorScheme ?? "light"
        })
      ),
      (context) => Effect.promise(() => context.close().catch(() => undefined))
    )
    const page = yield* Effect.promise(() => context.newPage())
    page.setDefaultTimeout(15_000)
    const problems: Array<string> = []
    const elsewhere: Array<string> = []
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`)
    })
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    page.on("dialog", (dialog) => {
      problems.push(`dialog: ${dialog.message()}`)
      void dialog.dismiss()
    })
    page.on("request", (request) => {
      const url = request.url()
      if (!url.startsWith(origin + "/") && !url.startsWith("data:")) elsewhere.push(url)
    })
    return { page, problems, elsewhere }
  })
