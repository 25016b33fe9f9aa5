import { expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer } from "effect"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Browser, Page } from "playwright-core"
import * as BrowserSupport from "../support/Browser.js"
import * as RedisServer from "../support/RedisServer.js"
import { awaitExit, boundWithStart, call, startService } from "../support/ServiceProcess.js"
import type { ServiceProcess } from "../support/ServiceProcess.js"

// The dashboard in a real chromium, against the service as a real process and a private Redis: what a person sees.

class Service extends Context.Tag("test/Service")<Service, ServiceProcess>() {}
class Chromium extends Context.Tag("test/Chromium")<Chromium, Browser>() {}

const Env = Layer.unwrapScoped(
  Effect.gen(function* () {
    const redis = yield* RedisServer.TestRedis
    const service = yield* startService({ env: { REDIS_URL: redis.url, LOG_LEVEL: "warn" } })
    return Layer.succeed(Service, service)
  })
).pipe(Layer.provideMerge(RedisServer.TestRedis.layer))

const Live = Layer.mergeAll(Env, Layer.scoped(Chromium, BrowserSupport.launch))

// Where the README's screenshot comes from: `DASHBOARD_SCREENSHOT=docs/dashboard.png npx vitest run <this file>`.
const screenshotPath = process.env.DASHBOARD_SCREENSHOT ?? Path.join(Os.tmpdir(), `dashboard-${process.pid}.png`)
// And the screenshots of each width, to look at: `dashboard-desktop.png` and `dashboard-phone.png` in this folder.
const screenshotDir = process.env.DASHBOARD_SCREENSHOT_DIR ?? Os.tmpdir()

const create = (service: ServiceProcess, name: string, price = 10) =>
  Effect.map(call(service.port, "POST", "/api/v1/products", { json: { name, price, stock: 3 } }), (reply) => {
    expect(reply.status, reply.text).toBe(201)
    return reply.body.product.id as number
  })

const open = (service: ServiceProcess, options?: Parameters<typeof BrowserSupport.watchedPage>[2]) =>
  Effect.gen(function* () {
    const watched = yield* BrowserSupport.watchedPage(yield* Chromium, service.url, options)
    yield* Effect.promise(() => watched.page.goto(service.url + "/dashboard"))
    // The first event of the feed has been drawn.
    yield* Effect.promise(() => watched.page.waitForSelector("body[data-events]"))
    return watched
  })

/** The dashboard at each width (BrowserSupport.widths), in a page of its own, its first event drawn. */
const openAtEachWidth = (service: ServiceProcess) =>
  Effect.forEach(BrowserSupport.widths, ({ height, name, width }) =>
    Effect.map(open(service, { width, height }), (watched) => ({ ...watched, name }))
  )

/** Waits in every page at once; `timeout` bounds each. */
const inEach = (pages: ReadonlyArray<{ readonly page: Page }>, wait: (page: Page) => Promise<unknown>) =>
  Effect.promise(() => Promise.all(pages.map(({ page }) => wait(page))))

// Functions below run in the page (where the CSP refuses strings to evaluate) and the tests compile without DOM
// types: hence `(globalThis as any)`.

const numberIn = (text: string | null) => Number((text ?? "").replace(/[^0-9.]/g, ""))

layer(Live, { timeout: Duration.millis(boundWithStart(60_000)) })("the dashboard in chromium", (it) => {
  it.scoped(
    "loads with no console error and nothing from elsewhere; counters, charts and the table move with API traffic",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const { elsewhere, page, problems } = yield* open(service)
        const id = yield* create(service, "Laptop")
        for (let i = 0; i < 5; i++) yield* call(service.port, "GET", `/api/v1/products/${id}`)
        yield* Effect.promise(async () => {
          await page.waitForFunction(
            () => Number((globalThis as any).document.getElementById("stat-hits").textContent) >= 4
          )
          await page.waitForFunction(
            () => Number((globalThis as any).document.getElementById("stat-misses").textContent) >= 1
          )
          for (const chart of ["chart-hitrate", "chart-rates", "chart-latency"]) {
            await page.waitForFunction(
              (id) => Number((globalThis as any).document.getElementById(id).dataset.max) > 0,
              chart
            )
          }
          await page.waitForSelector(`#recent td.cache-HIT`)
          await page.waitForSelector(`#recent td.cache-MISS`)
        })
        const rows = yield* Effect.promise(() => page.locator("#recent tbody tr").allTextContents())
        expect(rows.some((row) => row.includes(`/api/v1/products/${id}`))).toBe(true)
        expect(numberIn(yield* Effect.promise(() => page.textContent("#stat-hit_rate")))).toBeGreaterThan(0)
        expect(yield* Effect.promise(() => page.textContent("#badge"))).toBe("healthy")

        // Light and dark follow the system; at a phone's width nothing scrolls sideways.
        const background = () =>
          page.evaluate(() =>
            String((globalThis as any).getComputedStyle((globalThis as any).document.body).backgroundColor)
          )
        const light = yield* Effect.promise(background)
        yield* Effect.promise(() => page.emulateMedia({ colorScheme: "dark" }))
        expect(yield* Effect.promise(background)).not.toBe(light)
        yield* Effect.promise(() => page.setViewportSize({ width: 390, height: 844 }))
        // The charts follow their panels' width once the page has laid itself out again.
        yield* Effect.promise(() =>
          page.waitForFunction(
            () => (globalThis as any).document.documentElement.scrollWidth <= (globalThis as any).innerWidth,
            undefined,
            { timeout: 3_000 }
          )
        )

        expect(problems).toEqual([])
        expect(elsewhere).toEqual([])
      }),
    60_000
  )

  it.scoped(
    "the product panel: a read misses then hits, a price change invalidates, the next read misses",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const { page, problems } = yield* open(service)
        const id = yield* create(service, "Desk lamp", 25)
        const result = () => Effect.promise(async () => (await page.textContent("#product-result")) ?? "")
        const read = Effect.promise(async () => {
          const before = await page.getAttribute("#product-result", "data-read")
          await page.click("#read-product")
          await page.waitForFunction(
            (before) => ((globalThis as any).document.getElementById("product-result").dataset.read ?? "") !== before,
            before ?? ""
          )
        })
        yield* Effect.promise(() => page.fill("#product-id", String(id)))
        yield* read
        expect(yield* result()).toMatch(/^MISS · [0-9.]+ ms · #\d+ Desk lamp · 25\.00$/)
        yield* read
        expect(yield* result()).toMatch(/^HIT · [0-9.]+ ms · #\d+ Desk lamp · 25\.00$/)
        yield* Effect.promise(() => page.fill("#product-price", "19.5"))
        yield* Effect.promise(() => page.click("#update-price"))
        yield* Effect.promise(() => page.waitForSelector("#product-result:has-text('invalidated')"))
        yield* read
        expect(yield* result()).toMatch(/^MISS · [0-9.]+ ms · #\d+ Desk lamp · 19\.50$/)
        yield* read
        expect(yield* result()).toMatch(/^HIT /)
        // The recent-requests table shows the write between the reads.
        yield* Effect.promise(() =>
          page.waitForSelector(`#recent tr:has-text("PUT"):has-text("/api/v1/products/${id}")`)
        )

        // Some load from the page itself, so the charts have something to show in the screenshot.
        yield* Effect.promise(() => page.fill("#load-count", "300"))
        yield* Effect.promise(() => page.click("#load"))
        yield* Effect.promise(() => page.waitForSelector("#product-result:has-text('300 reads')", { timeout: 30_000 }))
        yield* Effect.promise(() => page.waitForTimeout(2_500))
        yield* Effect.promise(() => page.screenshot({ path: screenshotPath, fullPage: true }))
        expect(problems).toEqual([])
      }),
    60_000
  )

  it.scoped(
    "a product named like markup shows as text, in the product list and the recent requests",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const { page, problems } = yield* open(service)
        const name = `<img src=x onerror=alert(1)>`
        yield* Effect.promise(() => page.fill("#new-name", name))
        yield* Effect.promise(() => page.click("#create-product"))
        yield* Effect.promise(() => page.waitForSelector("#product-result:has-text('created')"))
        const cells = yield* Effect.promise(() => page.locator("#products tbody td:nth-child(2)").allTextContents())
        expect(cells).toContain(name)
        // A path is user input too.
        yield* call(service.port, "GET", "/api/v1/products/%3Cb%3Ebold%3C%2Fb%3E")
        yield* Effect.promise(() => page.waitForSelector(`#recent td:has-text("%3Cb%3E")`))
        yield* Effect.promise(() => page.waitForTimeout(300))
        const injected = yield* Effect.promise(() => page.locator("main img, main b").count())
        expect(injected).toBe(0)
        expect(problems).toEqual([])
      }),
    60_000
  )

  it.scoped(
    "Redis stopped, at each width: the badge turns degraded within seconds, a read shows ERROR (its X-Cache says MISS) and counts as a cache error; healthy again once Redis is back",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const redis = yield* RedisServer.TestRedis
        const pages = yield* openAtEachWidth(service)
        const id = yield* create(service, "Kettle")
        yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='healthy']"))
        const stoppedAt = performance.now()
        yield* redis.stop
        yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='degraded']", { timeout: 5_000 }))
        expect(performance.now() - stoppedAt).toBeLessThan(5_000)
        const read = yield* call(service.port, "GET", `/api/v1/products/${id}`)
        expect(read.headers["x-cache"]).toBe("MISS")
        for (const { page } of pages) {
          expect(yield* Effect.promise(() => page.textContent("#health-detail"))).toContain("cache down")
          const row = page.locator(`#recent tr:has-text("/api/v1/products/${id}")`).first()
          yield* Effect.promise(() => row.locator("td.cache-ERROR").waitFor({ timeout: 5_000 }))
          expect(yield* Effect.promise(() => row.locator("td.cache-ERROR").textContent())).toBe("ERROR")
          expect(numberIn(yield* Effect.promise(() => page.textContent("#stat-errors")))).toBeGreaterThan(0)
          expect(yield* Effect.promise(() => page.textContent("#counters"))).toContain("cache errors")
        }
        yield* redis.start
        yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='healthy']", { timeout: 10_000 }))
        expect(yield* Effect.promise(() => pages[0]!.page.textContent("#circuit"))).toBe("circuit closed")
      }),
    60_000
  )

  it.scoped(
    "at each width, nothing scrolls sideways and no cell, counter or button is clipped or off screen",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const pages = yield* openAtEachWidth(service)
        const id = yield* create(
          service,
          "A desk lamp with a rather long name, to see it wrap rather than be cut",
          1234.5
        )
        for (let i = 0; i < 3; i++) yield* call(service.port, "GET", `/api/v1/products/${id}`)
        yield* call(service.port, "GET", `/api/v1/products?offset=0&limit=20&${"long=query&".repeat(12)}end=1`)
        yield* call(service.port, "DELETE", "/api/v1/products/999999")
        for (const { name, page, problems } of pages) {
          yield* Effect.promise(async () => {
            await page.click("#list-products")
            await page.waitForSelector("#page-info:has-text('of')")
            await page.waitForSelector(`#recent tr:has-text("long=query")`)
            await page.waitForSelector(`#recent tr:has-text("DELETE")`)
            await page.waitForFunction(
              () => (globalThis as any).document.querySelectorAll("#recent tbody tr").length >= 5
            )
          })
          expect(yield* Effect.promise(() => BrowserSupport.layoutProblems(page)), name).toEqual([])
          yield* Effect.promise(() =>
            page.screenshot({ path: Path.join(screenshotDir, `dashboard-${name}.png`), fullPage: true })
          )
          expect(problems, name).toEqual([])
        }
      }),
    60_000
  )

  it.scoped(
    "at each width, the chart legends show the newest values before anything is hovered",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const pages = yield* openAtEachWidth(service)
        const id = yield* create(service, "Teapot")
        // Hits and, after a write, a miss: every series of every chart has had a value.
        for (let i = 0; i < 3; i++) yield* call(service.port, "GET", `/api/v1/products/${id}`)
        yield* call(service.port, "PUT", `/api/v1/products/${id}`, { json: { price: 12 } })
        for (let i = 0; i < 3; i++) yield* call(service.port, "GET", `/api/v1/products/${id}`)
        const shown = /^(\d+\.\d\/s|\d+\.\d %|[\d.]+ ms)$/
        for (const { name, page } of pages) {
          // The miss's interval drawn: its p50 is in the latency chart's legend. No cursor has been over any chart.
          yield* Effect.promise(() =>
            page.waitForFunction(() =>
              [...(globalThis as any).document.querySelectorAll("#chart-latency .u-series .u-value")].every(
                (value: any) => value.textContent !== "–" && value.textContent !== "--"
              )
            )
          )
          const legends = yield* Effect.promise(() =>
            page.evaluate(() =>
              [...(globalThis as any).document.querySelectorAll(".plot .u-legend .u-series")].map((series: any) => [
                series.querySelector(".u-label")?.textContent ?? "",
                series.querySelector(".u-value")?.textContent ?? ""
              ])
            )
          )
          // The time of the values shown: "now" while no cursor is over the chart.
          expect(
            legends.filter(([label]) => label === "Time").map(([, value]) => value),
            name
          ).toEqual(["now", "now", "now"])
          const values = legends.filter(([label]) => label !== "Time")
          expect(
            values.map(([label]) => label),
            name
          ).toEqual([
            "hit rate",
            "HTTP error",
            "write",
            "cache error",
            "miss",
            "hit",
            "hit p50",
            "hit p99",
            "miss p50",
            "miss p99"
          ])
          for (const [label, value] of values) expect(value, `${name}: ${label}`).toMatch(shown)
        }
      }),
    60_000
  )

  it.scoped(
    "at each width, the product panel pages through the catalog: a product beyond the 20th is reachable",
    () =>
      Effect.gen(function* () {
        const service = yield* Service
        const created: Array<number> = []
        for (let i = 1; i <= 25; i++) created.push(yield* create(service, `Paged ${i}`))
        const last = created.at(-1)!
        const pages = yield* openAtEachWidth(service)
        for (const { name, page } of pages) {
          yield* Effect.promise(async () => {
            await page.click("#list-products")
            await page.waitForSelector("#page-info:has-text('1–20 of')")
            const total = Number(((await page.textContent("#page-info")) ?? "").split("of ")[1])
            expect(total, name).toBeGreaterThanOrEqual(25)
            // Next until the last product shows, at most one click a page.
            for (let clicks = 0; clicks <= Math.ceil(total / 20); clicks++) {
              if ((await page.locator(`#products td:text-is("Paged 25")`).count()) > 0) break
              const before = await page.textContent("#page-info")
              await page.click("#next-page")
              await page.waitForFunction(
                (before) => (globalThis as any).document.getElementById("page-info").textContent !== before,
                before
              )
            }
            await page.locator(`#products tr:has(td:text-is("Paged 25")) button`).click()
            await page.waitForSelector(`#product-result:has-text("#${last} Paged 25")`)
            expect(await page.isDisabled("#next-page"), name).toBe(true)
          })
        }
      }),
    60_000
  )

  it.scoped(
    "the service stopped (SIGSTOP, then SIGTERM): at each width the badge says offline within seconds, and since when",
    () =>
      Effect.gen(function* () {
        const redis = yield* RedisServer.TestRedis
        const service = yield* startService({ env: { REDIS_URL: redis.url, LOG_LEVEL: "warn" } })
        const pages = yield* openAtEachWidth(service)
        yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='healthy']"))
        const offline = (reason: string) =>
          Effect.gen(function* () {
            const lost = performance.now()
            yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='offline']", { timeout: 6_000 }))
            expect(performance.now() - lost, reason).toBeLessThan(6_000)
            for (const { name, page } of pages) {
              expect(yield* Effect.promise(() => page.textContent("#badge")), name).toBe("offline")
              expect(yield* Effect.promise(() => page.textContent("#feed-state")), name).toMatch(
                /^offline since \d\d:\d\d:\d\d/
              )
              expect(yield* Effect.promise(() => page.textContent("#circuit")), name).toBe("")
            }
          })
        // Hung: nothing closes, only the silence tells.
        service.child.kill("SIGSTOP")
        yield* offline("hung")
        service.child.kill("SIGCONT")
        yield* inEach(pages, (page) => page.waitForSelector("#badge[data-status='healthy']", { timeout: 15_000 }))
        // Gone: the feed ends and every reconnection is refused.
        service.child.kill("SIGTERM")
        yield* offline("exited")
        expect((yield* awaitExit(service, 10_000)).code).toBe(0)
        for (const { name, page } of pages) {
          yield* Effect.promise(() =>
            page.screenshot({ path: Path.join(screenshotDir, `dashboard-offline-${name}.png`), fullPage: false })
          )
        }
      }),
    { timeout: 120_000 }
  )
})
