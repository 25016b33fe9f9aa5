// What a run shows: the table on the terminal and the SVG chart the README embeds.
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { benchDir } from "./process.mjs"
import { scaleWorkers, targetConns } from "./settings.mjs"

export const resultsDir = join(benchDir, "results")

export const pad = (text, width, right) => (right ? String(text).padStart(width) : String(text).padEnd(width))
export const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : "-")

const spread = (min, max) => (Number.isFinite(min) ? `${fixed(min, 2)}-${fixed(max, 2)}` : "-")

const cacheNote = (row) => {
  if (row.hit_rate === undefined) return "-"
  if (row.scenario === "miss-id") return `miss/req ${fixed(row.misses_per_request, 2)} (${fixed(row.miss_rate, 2)})`
  return `hit ${fixed(row.hit_rate * 100, 1)}%`
}

/** @param {ReadonlyArray<any>} rows */
export const printTable = (rows) => {
  /** @type {Array<[string, number, (row: any) => unknown, boolean?]>} */
  const columns = [
    ["target", 14, (r) => r.target],
    ["scenario", 13, (r) => r.scenario],
    ["conns", 5, (r) => r.conns, true],
    ["req/s", 8, (r) => r.rps, true],
    ["min-max", 13, (r) => `${r.rps_min}-${r.rps_max}`, true],
    ["p50 ms", 7, (r) => fixed(r.p50_ms, 2), true],
    ["p99 ms", 7, (r) => fixed(r.p99_ms, 2), true],
    ["x base", 6, (r) => fixed(r.ratio_baseline, 2), true],
    ["rounds x base", 13, (r) => spread(r.ratio_baseline_min, r.ratio_baseline_max), true],
    ["x hello", 7, (r) => fixed(r.ratio_hello, 2), true],
    ["x w=1", 5, (r) => fixed(r.ratio_workers1, 2), true],
    ["cpu svc s", 9, (r) => fixed(r.cpu_service_s, 2), true],
    ["cpu redis s", 11, (r) => fixed(r.cpu_redis_s, 2), true],
    ["svc us/req", 10, (r) => r.cpu_service_us_per_req, true],
    ["peak rss MB", 11, (r) => fixed(r.peak_rss_mb, 1), true],
    ["rss x base", 10, (r) => fixed(r.rss_ratio_baseline, 2), true],
    ["cache", 21, (r) => cacheNote(r), true]
  ]
  const line = (cells) => cells.join("  ")
  console.log(line(columns.map(([name, width, , right]) => pad(name, width, right))))
  for (const row of rows) console.log(line(columns.map(([, width, cell, right]) => pad(cell(row), width, right))))
}

const escapeXml = (text) =>
  String(text).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c])

const colors = {
  service: "#2f6fdf",
  "service pg": "#2a9d8f",
  baseline: "#8a8f98",
  "hello-effect": "#f3c27a",
  "service w=1": "#8fb3ef",
  "service w=2": "#1b3f80",
  "service w=auto": "#5a2fa0"
}

/**
 * A grouped bar chart of req/s: one group per scenario and connection count, one bar per target. Above the service's
 * bar, its ratio to the baseline; at `targetConns`, a dashed mark across it where the scenario's minimum target lies.
 */
export const svgChart = (rows, title, targets = []) => {
  /** @type {Array<{ label: string; rows: Array<any> }>} */
  const groups = []
  for (const row of rows) {
    const label = `${row.scenario} c${row.conns}`
    let group = groups.find((g) => g.label === label)
    if (!group) groups.push((group = { label, rows: [] }))
    group.rows.push(row)
  }
  const bar = 26
  const gap = 4
  const groupGap = 56
  const left = 70
  const top = 60
  const height = 300
  const groupWidths = groups.map((g) => g.rows.length * (bar + gap) - gap)
  const width = left + groupWidths.reduce((a, b) => a + b + groupGap, 0) + 20
  const max = Math.max(1, ...rows.map((r) => r.rps)) * 1.15
  const step = 10 ** Math.floor(Math.log10(max / 4))
  // max / (10 * step) < 0.4: the last always fits.
  const tick = /** @type {number} */ ([1, 2, 5, 10].map((m) => m * step).find((t) => max / t <= 6))
  const y = (value) => Math.round((top + height - (value / max) * height) * 10) / 10
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${top + height + 70}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="bold">${escapeXml(title)}</text>`
  ]
  for (let t = 0; t <= max; t += tick) {
    parts.push(`<line x1="${left}" x2="${width - 10}" y1="${y(t)}" y2="${y(t)}" stroke="#e3e3e3"/>`)
    parts.push(`<text x="${left - 6}" y="${y(t) + 4}" text-anchor="end" fill="#555">${t}</text>`)
  }
  parts.push(
    `<text x="14" y="${top + height / 2}" transform="rotate(-90 14 ${top + height / 2})" text-anchor="middle">req/s</text>`
  )
  let marked = false
  let x = left + groupGap / 2
  groups.forEach((group, g) => {
    const baseline = group.rows.find((row) => row.target === "baseline")
    group.rows.forEach((row, i) => {
      const bx = x + i * (bar + gap)
      const by = y(row.rps)
      const fill = colors[row.target] ?? "#555"
      parts.push(`<rect x="${bx}" y="${by}" width="${bar}" height="${top + height - by}" fill="${fill}"/>`)
      parts.push(`<text x="${bx + bar / 2}" y="${by - 4}" text-anchor="middle" font-size="9">${row.rps}</text>`)
      const ratio =
        row.target.startsWith("service") && !row.instance.startsWith("workers")
          ? row.ratio_baseline
          : row.ratio_workers1
      if (ratio !== undefined && row.instance !== `workers${scaleWorkers[0]}`) {
        const note = `${fixed(ratio, 2)}x`
        parts.push(
          `<text x="${bx + bar / 2}" y="${by - 15}" text-anchor="middle" font-size="9" fill="${fill}">${note}</text>`
        )
      }
      const target = targets.find((t) => t.scenario === row.scenario)
      if (row.target === "service" && row.conns === targetConns && target !== undefined && baseline !== undefined) {
        const ty = y(baseline.rps * target.must)
        parts.push(
          `<line x1="${bx - 3}" x2="${bx + bar + 3}" y1="${ty}" y2="${ty}" stroke="#c0392b" stroke-width="2" stroke-dasharray="4 2"/>`
        )
        marked = true
      }
    })
    parts.push(
      `<text x="${x + groupWidths[g] / 2}" y="${top + height + 16}" text-anchor="middle">${escapeXml(group.label)}</text>`
    )
    x += groupWidths[g] + groupGap
  })
  let lx = left
  for (const [name, fill] of Object.entries(colors)) {
    if (!rows.some((row) => row.target === name)) continue
    parts.push(`<rect x="${lx}" y="${top + height + 34}" width="12" height="12" fill="${fill}"/>`)
    parts.push(`<text x="${lx + 16}" y="${top + height + 44}">${name}</text>`)
    lx += 110
  }
  const ratios = [
    rows.some((row) => row.target === "service" && row.ratio_baseline !== undefined) && "service to baseline",
    rows.some((row) => row.ratio_workers1 !== undefined) && "workers to w=1"
  ].filter(Boolean)
  const notes = [
    ratios.length > 0 && `ratio above the req/s: ${ratios.join(", ")}`,
    marked && `red dashes: the target minimum at c${targetConns}`
  ].filter(Boolean)
  if (notes.length > 0) {
    parts.push(`<text x="${lx}" y="${top + height + 44}" fill="#555">${escapeXml(notes.join("; "))}</text>`)
  }
  parts.push("</svg>")
  return parts.join("\n") + "\n"
}

export const chartTitle = (results) =>
  `req/s, ${results.mode} run ${results.started_at} (${results.settings.rounds}x${results.settings.seconds}s, median)`

/** Writes latest.json and latest.svg from `results`. */
export const writeLatest = (results, targets) => {
  writeFileSync(join(resultsDir, "latest.json"), JSON.stringify(results, null, 2) + "\n")
  writeFileSync(join(resultsDir, "latest.svg"), svgChart(results.summary, chartTitle(results), targets))
}

/** `--render FILE`: makes FILE the latest results again and redraws latest.svg from it; runs nothing. */
export const render = (file, targets) => {
  writeLatest(JSON.parse(readFileSync(file, "utf8")), targets)
  console.log(`bench/results/latest.json and latest.svg now show ${file}`)
}
