import { expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Layer } from "effect"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Browser } from "playwright-core"
import * as BrowserSupport from "../support/Browser.js"
import * as RedisServer from "../support/RedisServer.js"
import { boundWithStart, call, startService } from "../support/ServiceProcess.js"
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
      })
  )

  it.scoped("the product panel: a read misses then hits, a price change invalidates, the next read misses", () =>
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
      yield* Effect.promise(() => page.waitForSelector(`#recent tr:has-text("PUT"):has-text("/api/v1/products/${id}")`))

      // Some load from the page itself, so the charts have something to show in the screenshot.
      yield* Effect.promise(() => page.fill("#load-count", "300"))
      yield* Effect.promise(() => page.click("#load"))
      yield* Effect.promise(() => page.waitForSelector("#product-result:has-text('300 reads')", { timeout: 30_000 }))
      yield* Effect.promise(() => page.waitForTimeout(2_500))
      yield* Effect.promise(() => page.screenshot({ path: screenshotPath, fullPage: true }))
      expect(problems).toEqual([])
    })
  )

  it.scoped("a product named like markup shows as text, in the product list and the recent requests", () =>
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
    })
  )

  it.scoped("Redis stopped: the badge turns degraded within seconds, and healthy again once Redis is back", () =>
    Effect.gen(function* () {
      const service = yield* Service
      const redis = yield* RedisServer.TestRedis
      const { page } = yield* open(service)
      yield* Effect.promise(() => page.waitForSelector("#badge[data-status='healthy']"))
      const stoppedAt = performance.now()
      yield* redis.stop
      yield* Effect.promise(() => page.waitForSelector("#badge[data-status='degraded']", { timeout: 5_000 }))
      expect(performance.now() - stoppedAt).toBeLessThan(5_000)
      expect(yield* Effect.promise(() => page.textContent("#health-detail"))).toContain("cache down")
      yield* redis.start
      yield* Effect.promise(() => page.waitForSelector("#badge[data-status='healthy']", { timeout: 10_000 }))
      expect(yield* Effect.promise(() => page.textContent("#circuit"))).toBe("circuit closed")
    })
  )
})
