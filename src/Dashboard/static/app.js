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

  // ---- history for the charts (seconds since epoch, one point per event)
  const history = {
    t: [],
    hitRate: [],
    hit: [],
    miss: [],
    write: [],
    error: [],
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
    for (const kind of ["hit", "miss", "write", "error"]) history[kind].push(event.rates[kind])
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

  const line = (label, color, extra) => ({ label, stroke: color, width: 2, spanGaps: false, ...extra })

  // Stacked by hand: each series is drawn as the sum of itself and those below it, filled, largest first.
  const kinds = ["error", "write", "miss", "hit"]
  const stacked = () => {
    const sums = []
    let running = history.t.map(() => 0)
    for (const kind of [...kinds].reverse()) {
      running = running.map((sum, i) => sum + history[kind][i])
      sums.unshift(running)
    }
    return sums
  }

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
        series: [{}, line("hit rate %", cssVar("--hit"), { fill: cssVar("--hit") + "22" })]
      },
      () => [history.t, history.hitRate]
    )
    add(
      "chart-rates",
      {
        axes: axes("req/s"),
        series: [
          {},
          ...kinds.map((kind, i) => ({
            label: kind,
            stroke: cssVar("--" + kind),
            fill: cssVar("--" + kind) + "99",
            width: 1,
            // The legend shows the kind's own rate, not the stacked sum drawn.
            value: (u, v, s, idx) => (idx == null ? "–" : String(history[kinds[i]][idx] ?? "–"))
          }))
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
          {},
          line("hit p50", cssVar("--hit")),
          line("hit p99", cssVar("--hit"), { dash: [6, 4], width: 1 }),
          line("miss p50", cssVar("--miss")),
          line("miss p99", cssVar("--miss"), { dash: [6, 4], width: 1 })
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

  const showRecent = (recent) => {
    const rows = [...recent].reverse().map((request) => {
      const row = document.createElement("tr")
      row.append(
        cell("td", time(request.at)),
        cell("td", request.method),
        cell("td", request.path),
        cell("td", String(request.status), request.status >= 400 ? "status-error" : ""),
        cell("td", request.x_cache ?? "", request.x_cache ? "cache-" + request.x_cache : ""),
        cell("td", request.duration_ms.toFixed(2))
      )
      return row
    })
    $("recent").tBodies[0].replaceChildren(...rows)
  }

  // ---- the feed
  let events = 0
  const connect = () => {
    const source = new EventSource("/api/v1/cache/events")
    source.onmessage = (message) => {
      const event = JSON.parse(message.data)
      events++
      showStats(event.stats)
      showHealth(event.health)
      showRecent(event.recent)
      push(event)
      redraw()
      $("feed-state").textContent = "live · " + time(Date.parse(event.at))
      document.body.dataset.events = String(events)
    }
    source.onerror = () => {
      $("feed-state").textContent = "reconnecting…"
    }
  }

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

  const listProducts = async () => {
    const reply = await api("GET", "/api/v1/products?offset=0&limit=20")
    if (!reply.response.ok) return result(errorText(reply), "status-error")
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
    const cache = reply.response.headers.get("x-cache") ?? ""
    result(`${reply.json.total} products · list ${cache} ${reply.json.duration_ms} ms`, "cache-" + cache)
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
    await listProducts()
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
  $("list-products").addEventListener("click", guarded(listProducts))
  $("read-product").addEventListener("click", guarded(readProduct))
  $("update-price").addEventListener("click", guarded(updatePrice))
  $("create-product").addEventListener("click", guarded(createProduct))
  $("delete-product").addEventListener("click", guarded(deleteProduct))
  $("load").addEventListener("click", guarded(load))

  makeCharts()
  connect()
  void guarded(listProducts)()
})()
