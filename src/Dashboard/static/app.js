// The dashboard: draws the events of /api/v1/cache/events and drives the API from its product panel.
// Everything is rendered through textContent, never as markup: product names and paths are user input.
"use strict"
;(() => {
  const windowSeconds = 300
  const $ = (id) => document.getElementById(id)

  /** Text in a new element; `className` optional. */
  const cell = (tag, text, className) => {
    const element = document.createElement(tag)
    element.textContent = text
    if (className) element.className = className
    return element
  }

  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim()

  // The kinds of requests, stacked in this order from the bottom; one word per meaning: a "cache error" is a read the
  // cache failed (answered from the database), an "HTTP error" an answer of 400 or more.
  const kinds = ["hit", "miss", "cache_error", "write", "http_error"]
  const kindLabels = { hit: "hit", miss: "miss", cache_error: "cache error", write: "write", http_error: "HTTP error" }

  // ---- history for the charts (seconds since epoch, one point per event)
  const history = {
    t: [],
    hitRate: [],
    hit: [],
    miss: [],
    cache_error: [],
    write: [],
    http_error: [],
    hitP50: [],
    hitP99: [],
    missP50: [],
    missP99: []
  }

  const push = (event) => {
    const t = Date.parse(event.at) / 1000
    const gets = event.rates.hit + event.rates.miss
    history.t.push(t)
    // The hit rate of this interval; none when there were no reads.
    history.hitRate.push(gets > 0 ? (100 * event.rates.hit) / gets : null)
    for (const kind of kinds) history[kind].push(event.rates[kind])
    history.hitP50.push(event.latency_ms.hit ? event.latency_ms.hit.p50 : null)
    history.hitP99.push(event.latency_ms.hit ? event.latency_ms.hit.p99 : null)
    history.missP50.push(event.latency_ms.miss ? event.latency_ms.miss.p50 : null)
    history.missP99.push(event.latency_ms.miss ? event.latency_ms.miss.p99 : null)
    while (history.t.length > 0 && history.t[0] < t - windowSeconds) {
      for (const series of Object.values(history)) series.shift()
    }
  }

  // ---- charts (uPlot), rebuilt when the colour scheme changes
  let charts = []

  const axes = (label) => {
    const stroke = cssVar("--muted")
    const grid = { stroke: cssVar("--grid"), width: 1 }
    return [
      { stroke, grid, ticks: grid },
      { stroke, grid, ticks: grid, label, size: 50 }
    ]
  }

  /** The newest value of a series that has one: what a legend shows while the cursor is not over its chart. */
  const latest = (series) => {
    for (let i = series.length - 1; i >= 0; i--) if (series[i] != null) return series[i]
    return null
  }

  // A legend shows the values under the cursor, and the newest ones otherwise (uPlot's own shows "--" then).
  const legendValue = (series, format) => (u, v, s, idx) => {
    const value = idx == null ? latest(series()) : series()[idx]
    return value == null ? "–" : format(value)
  }
  const timeValue = (u, v, s, idx) => (idx == null ? "now" : time(history.t[idx] * 1000))
  const fixed = (digits, unit) => (value) => value.toFixed(digits) + unit

  const line = (label, color, series, format, extra) => ({
    label,
    stroke: color,
    width: 2,
    spanGaps: false,
    value: legendValue(series, format),
    ...extra
  })

  // Stacked by hand: each series is drawn as the sum of itself and those below it, filled, largest first.
  const stackedKinds = [...kinds].reverse()
  const stacked = () => {
    const sums = []
    let running = history.t.map(() => 0)
    for (const kind of kinds) {
      running = running.map((sum, i) => sum + history[kind][i])
      sums.unshift(running)
    }
    return sums
  }

  const milliseconds = (value) => (value < 10 ? value.toFixed(2) : value.toFixed(0)) + " ms"

  const makeCharts = () => {
    for (const chart of charts) chart.plot.destroy()
    charts = []
    if (typeof uPlot !== "function") return
    const size = (element) => ({ width: Math.max(240, element.clientWidth), height: 200 })
    const add = (id, options, data) => {
      const element = $(id)
      const plot = new uPlot({ ...size(element), ...options }, data(), element)
      charts.push({ plot, element, data })
    }
    add(
      "chart-hitrate",
      {
        scales: { y: { range: [0, 100] } },
        axes: axes("%"),
        series: [
          { value: timeValue },
          line("hit rate", cssVar("--hit"), () => history.hitRate, fixed(1, " %"), { fill: cssVar("--hit") + "22" })
        ]
      },
      () => [history.t, history.hitRate]
    )
    add(
      "chart-rates",
      {
        axes: axes("req/s"),
        series: [
          { value: timeValue },
          ...stackedKinds.map((kind) => {
            const color = cssVar("--" + kind.replace("_", "-"))
            // The legend shows the kind's own rate, not the stacked sum drawn.
            return {
              label: kindLabels[kind],
              stroke: color,
              fill: color + "99",
              width: 1,
              value: legendValue(() => history[kind], fixed(1, "/s"))
            }
          })
        ]
      },
      () => [history.t, ...stacked()]
    )
    add(
      "chart-latency",
      {
        scales: { y: { distr: 3 } },
        axes: axes("ms"),
        series: [
          { value: timeValue },
          line("hit p50", cssVar("--hit"), () => history.hitP50, milliseconds),
          line("hit p99", cssVar("--hit"), () => history.hitP99, milliseconds, { dash: [6, 4], width: 1 }),
          line("miss p50", cssVar("--miss"), () => history.missP50, milliseconds),
          line("miss p99", cssVar("--miss"), () => history.missP99, milliseconds, { dash: [6, 4], width: 1 })
        ]
      },
      () => [history.t, history.hitP50, history.hitP99, history.missP50, history.missP99]
    )
  }

  const redraw = () => {
    for (const chart of charts) {
      const data = chart.data()
      chart.plot.setData(data)
      // The largest value drawn, for whoever checks that the chart moved (the browser tests).
      const values = data
        .slice(1)
        .flat()
        .filter((value) => typeof value === "number")
      chart.element.dataset.max = String(values.length === 0 ? 0 : Math.max(...values))
    }
  }

  new ResizeObserver(() => {
    for (const chart of charts) chart.plot.setSize({ width: Math.max(240, chart.element.clientWidth), height: 200 })
  }).observe(document.querySelector("main"))
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    makeCharts()
  })

  // ---- counters, badge, recent requests
  const percent = (rate) => (100 * rate).toFixed(1) + " %"

  const showStats = (stats) => {
    for (const name of ["hits", "misses", "sets", "deletes", "errors", "total_gets"]) {
      $("stat-" + name).textContent = String(stats[name])
    }
    $("stat-hit_rate").textContent = percent(stats.hit_rate)
    // Shown when the service counts answers served stale (grace), absent otherwise.
    const hasStale = typeof stats.stale === "number"
    $("stale-row").hidden = !hasStale
    if (hasStale) $("stat-stale").textContent = String(stats.stale)
  }

  const showHealth = (health) => {
    const badge = $("badge")
    badge.dataset.status = health.status
    badge.textContent = health.status
    $("circuit").textContent = health.circuit ? "circuit " + health.circuit : ""
    const detail = ["database " + health.database, "cache " + health.cache]
    if (health.database_writes) detail.push("writes " + health.database_writes)
    $("health-detail").textContent = detail.join(" · ")
  }

  const time = (at) => new Date(at).toLocaleTimeString([], { hour12: false })

  // A read the cache failed was answered from the database with `X-Cache: MISS`; what happened was a cache error.
  const cacheCell = (request) => {
    const shown = request.cache_error ? "ERROR" : (request.x_cache ?? "")
    const element = cell("td", shown, shown ? "cache-" + shown : "")
    if (request.cache_error) element.title = "the cache failed: answered from the database (X-Cache: MISS)"
    return element
  }

  const showRecent = (recent) => {
    const rows = [...recent].reverse().map((request) => {
      const row = document.createElement("tr")
      row.append(
        cell("td", time(request.at)),
        cell("td", request.method),
        cell("td", request.path),
        cell("td", String(request.status), request.status >= 400 ? "status-error" : ""),
        cacheCell(request),
        cell("td", request.duration_ms.toFixed(2))
      )
      return row
    })
    $("recent").tBodies[0].replaceChildren(...rows)
  }

  // ---- the feed: an event a second while the service is up; without one for a while, it is offline
  const silenceMillis = 3_500
  let events = 0
  let source = null
  let openedAt = Date.now()
  let heardAt = 0
  let offlineSince = null
  let retryMillis = 1_000
  let retryTimer = null

  // What the service said last is no longer its state: the badge says so, and since when nothing was heard.
  const showOffline = () => {
    offlineSince ??= heardAt || openedAt
    const badge = $("badge")
    badge.dataset.status = "offline"
    badge.textContent = "offline"
    badge.title = "no event from the service since " + time(offlineSince)
    $("circuit").textContent = ""
    $("health-detail").textContent = "no data since " + time(offlineSince)
    $("feed-state").textContent = "offline since " + time(offlineSince) + " · reconnecting…"
    document.body.dataset.feed = "offline"
  }

  // Reconnects are ours, not EventSource's: it gives up for good on an answer such as the feed cap's 503.
  const reconnect = () => {
    source?.close()
    source = null
    showOffline()
    if (retryTimer !== null) return
    retryTimer = setTimeout(() => {
      retryTimer = null
      connect()
    }, retryMillis)
    retryMillis = Math.min(10_000, retryMillis * 2)
  }

  const connect = () => {
    source = new EventSource("/api/v1/cache/events")
    openedAt = Date.now()
    source.onmessage = (message) => {
      const event = JSON.parse(message.data)
      events++
      heardAt = Date.now()
      offlineSince = null
      retryMillis = 1_000
      document.body.dataset.feed = "live"
      $("badge").title = ""
      showStats(event.stats)
      showHealth(event.health)
      showRecent(event.recent)
      push(event)
      redraw()
      $("feed-state").textContent = "live · " + time(Date.parse(event.at))
      document.body.dataset.events = String(events)
    }
    source.onerror = reconnect
  }

  // A service that hangs (or a network that drops everything) closes nothing: silence is the only sign.
  setInterval(() => {
    if (source !== null && Date.now() - Math.max(heardAt, openedAt) > silenceMillis) reconnect()
  }, 500)

  // ---- product panel
  const result = (text, className) => {
    const element = $("product-result")
    element.className = "result " + (className ?? "")
    element.textContent = text
  }

  const api = async (method, path, body) => {
    const init = { method, headers: {} }
    if (body !== undefined) {
      init.headers["content-type"] = "application/json"
      init.body = JSON.stringify(body)
    }
    const response = await fetch(path, init)
    const text = await response.text()
    let json
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { response, json }
  }

  const errorText = (reply) => `${reply.response.status}: ${reply.json?.message ?? reply.response.statusText}`

  const productId = () => Number($("product-id").value)

  // The list a page at a time, as the API serves it (`offset`, `limit`): a catalog of any size is reachable.
  const pageSize = 20
  let listOffset = 0
  let listTotal = 0

  const showPage = (offset, shown, total) => {
    listOffset = offset
    listTotal = total
    $("page-info").textContent = total === 0 ? "no products" : `${offset + 1}–${offset + shown} of ${total}`
    $("prev-page").disabled = offset === 0
    $("next-page").disabled = offset + pageSize >= total
  }

  const lastOffset = () => Math.max(0, Math.floor((listTotal - 1) / pageSize) * pageSize)

  /** Lists the page at `offset`; `true` once shown. */
  const listProducts = async (offset = listOffset) => {
    const reply = await api("GET", `/api/v1/products?offset=${offset}&limit=${pageSize}`)
    if (!reply.response.ok) return result(errorText(reply), "status-error")
    // Past the end (products were deleted meanwhile): the last page instead.
    if (reply.json.products.length === 0 && offset > 0 && reply.json.total > 0) {
      listTotal = reply.json.total
      return listProducts(lastOffset())
    }
    const rows = reply.json.products.map((product) => {
      const row = document.createElement("tr")
      const read = cell("button", "read")
      read.type = "button"
      read.addEventListener("click", () => {
        $("product-id").value = String(product.id)
        void readProduct()
      })
      const actions = document.createElement("td")
      actions.append(read)
      row.append(
        cell("td", String(product.id)),
        cell("td", product.name),
        cell("td", product.price.toFixed(2)),
        actions
      )
      return row
    })
    $("products").tBodies[0].replaceChildren(...rows)
    showPage(offset, rows.length, reply.json.total)
    const cache = reply.response.headers.get("x-cache") ?? ""
    result(`${reply.json.total} products · list ${cache} ${reply.json.duration_ms} ms`, "cache-" + cache)
    return true
  }

  let reads = 0
  const readProduct = async () => {
    const id = productId()
    const reply = await api("GET", `/api/v1/products/${id}`)
    if (!reply.response.ok) return result(errorText(reply), "status-error")
    const cache = reply.response.headers.get("x-cache") ?? ""
    const product = reply.json.product
    result(
      `${cache} · ${reply.json.duration_ms} ms · #${product.id} ${product.name} · ${product.price.toFixed(2)}`,
      "cache-" + cache
    )
    reads++
    $("product-result").dataset.read = String(reads)
  }

  const updatePrice = async () => {
    const id = productId()
    const reply = await api("PUT", `/api/v1/products/${id}`, { price: Number($("product-price").value) })
    if (!reply.response.ok) return result(errorText(reply), "status-error")
    result(
      `#${id} now costs ${reply.json.product.price.toFixed(2)}: its cache entry was invalidated, the next read is a MISS`
    )
  }

  const createProduct = async () => {
    const reply = await api("POST", "/api/v1/products", {
      name: $("new-name").value,
      price: Number($("product-price").value),
      stock: 1
    })
    if (!reply.response.ok) return result(errorText(reply), "status-error")
    $("product-id").value = String(reply.json.product.id)
    // The newest product is on the last page, which the list's total tells.
    await listProducts()
    if (lastOffset() !== listOffset) await listProducts(lastOffset())
    result(`created #${reply.json.product.id} ${reply.json.product.name}`)
  }

  const deleteProduct = async () => {
    const id = productId()
    const reply = await api("DELETE", `/api/v1/products/${id}`)
    if (!reply.response.ok) return result(errorText(reply), "status-error")
    await listProducts()
    result(`deleted #${id}: its cache entry and the cached lists were invalidated`)
  }

  // N reads of the product in the id field, a few at a time, so the charts move without a terminal.
  const load = async () => {
    const count = Math.min(2000, Math.max(1, Number($("load-count").value) || 1))
    const id = productId()
    let next = 0
    const tally = { HIT: 0, MISS: 0, other: 0 }
    const worker = async () => {
      while (next < count) {
        next++
        const response = await fetch(`/api/v1/products/${id}`)
        await response.arrayBuffer()
        const cache = response.headers.get("x-cache")
        tally[cache === "HIT" || cache === "MISS" ? cache : "other"]++
      }
    }
    result(`loading: ${count} reads of #${id}…`)
    await Promise.all(Array.from({ length: 8 }, worker))
    result(`${count} reads of #${id}: ${tally.HIT} HIT, ${tally.MISS} MISS, ${tally.other} other`)
  }

  const guarded = (action) => () => {
    action().catch((error) => result(String(error), "status-error"))
  }

  $("reset-stats").addEventListener(
    "click",
    guarded(async () => {
      const reply = await api("POST", "/api/v1/cache/stats/reset")
      if (reply.response.ok) showStats(reply.json.cache_stats)
    })
  )
  $("list-products").addEventListener(
    "click",
    guarded(() => listProducts(0))
  )
  $("prev-page").addEventListener(
    "click",
    guarded(() => listProducts(Math.max(0, listOffset - pageSize)))
  )
  $("next-page").addEventListener(
    "click",
    guarded(() => listProducts(listOffset + pageSize))
  )
  $("read-product").addEventListener("click", guarded(readProduct))
  $("update-price").addEventListener("click", guarded(updatePrice))
  $("create-product").addEventListener("click", guarded(createProduct))
  $("delete-product").addEventListener("click", guarded(deleteProduct))
  $("load").addEventListener("click", guarded(load))

  makeCharts()
  connect()
  void guarded(listProducts)()
})()
