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

/** The two widths every dashboard test looks at: a desktop and a phone (390 px, an iPhone 12-15's CSS width). */
export const widths = [
  { name: "desktop", width: 1280, height: 900 },
  { name: "phone", width: 390, height: 844 }
] as const

/**
 * What a person could not read in full at this width: the page scrolling sideways, a cell, counter or button whose
 * content is wider than its box (clipped or spilling), or a button not inside the viewport's width. Empty when none.
 * Runs in the page (compiled without DOM types, hence `globalThis as any`).
 */
export const layoutProblems = (page: Page): Promise<Array<string>> =>
  page.evaluate(() => {
    const window = globalThis as any
    const document = window.document
    const problems: Array<string> = []
    const viewport = window.innerWidth
    if (document.documentElement.scrollWidth > viewport) {
      problems.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${viewport} px viewport`)
    }
    for (const element of document.querySelectorAll("td, th, dd, button")) {
      if (element.getClientRects().length === 0) continue
      const name = `${element.tagName.toLowerCase()} "${String(element.textContent).trim().slice(0, 30)}"`
      if (element.scrollWidth > element.clientWidth + 1) {
        problems.push(`${name}: content ${element.scrollWidth} px in a box of ${element.clientWidth} px`)
      }
      const box = element.getBoundingClientRect()
      if (element.tagName === "BUTTON" && (box.left < 0 || box.right > viewport + 0.5)) {
        problems.push(`${name}: from ${box.left} to ${box.right} px, outside the viewport`)
      }
    }
    return problems
  })
