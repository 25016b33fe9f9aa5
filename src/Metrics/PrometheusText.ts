import { Effect, Metric, MetricState, Option } from "effect"
import type { MetricLabel, MetricPair } from "effect"
import { sampleProcess } from "../Metrics.js"

// The Prometheus text exposition format, version 0.0.4, from Effect's metric snapshot. Written by hand: the only
// ready-made route is @effect/opentelemetry's metric bridge plus the OpenTelemetry Prometheus exporter, a second
// metrics SDK and HTTP server for what is a string join.

export const contentType = "text/plain; version=0.0.4; charset=utf-8"

const metricName = (name: string) => name.replace(/[^a-zA-Z0-9_:]/g, "_").replace(/^(?=[0-9])/, "_")
const labelName = (name: string) => name.replace(/[^a-zA-Z0-9_]/g, "_").replace(/^(?=[0-9])/, "_")
const labelValue = (value: string) => value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const help = (text: string) => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const number = (value: number | bigint) =>
  typeof value === "bigint"
    ? value.toString()
    : Number.isNaN(value)
      ? "NaN"
      : value === Infinity
        ? "+Inf"
        : value === -Infinity
          ? "-Inf"
          : String(value)

const labelSet = (tags: ReadonlyArray<MetricLabel.MetricLabel>, extra?: readonly [string, string]) => {
  const parts = tags.map((tag) => `${labelName(tag.key)}="${labelValue(tag.value)}"`)
  if (extra !== undefined) parts.push(`${extra[0]}="${labelValue(extra[1])}"`)
  return parts.length === 0 ? "" : `{${parts.join(",")}}`
}

const typeOf = (state: MetricState.MetricState.Untyped) =>
  MetricState.isCounterState(state) || MetricState.isFrequencyState(state)
    ? "counter"
    : MetricState.isGaugeState(state)
      ? "gauge"
      : MetricState.isHistogramState(state)
        ? "histogram"
        : "summary"

const samples = (
  name: string,
  tags: ReadonlyArray<MetricLabel.MetricLabel>,
  state: MetricState.MetricState.Untyped
) => {
  if (MetricState.isCounterState(state)) return [`${name}${labelSet(tags)} ${number(state.count)}`]
  if (MetricState.isGaugeState(state)) return [`${name}${labelSet(tags)} ${number(state.value)}`]
  if (MetricState.isFrequencyState(state)) {
    return [...state.occurrences].map(([key, count]) => `${name}${labelSet(tags, ["key", key])} ${count}`)
  }
  if (!MetricState.isHistogramState(state) && !MetricState.isSummaryState(state)) return []
  const tail = [`${name}_sum${labelSet(tags)} ${number(state.sum)}`, `${name}_count${labelSet(tags)} ${state.count}`]
  if (MetricState.isHistogramState(state)) {
    // Effect's buckets are cumulative already, and the last boundary is +Inf.
    const buckets = state.buckets.map(([le, count]) => `${name}_bucket${labelSet(tags, ["le", number(le)])} ${count}`)
    return [...buckets, ...tail]
  }
  const quantiles = state.quantiles.flatMap(([quantile, value]) =>
    Option.isSome(value) ? [`${name}${labelSet(tags, ["quantile", number(quantile)])} ${number(value.value)}`] : []
  )
  return [...quantiles, ...tail]
}

/** The text of every metric in `pairs`, one family per name (HELP, TYPE, then its series), families sorted by name. */
export const render = (pairs: ReadonlyArray<MetricPair.MetricPair.Untyped>): string => {
  const families = new Map<string, Array<MetricPair.MetricPair.Untyped>>()
  for (const pair of pairs) {
    const name = metricName(pair.metricKey.name)
    const family = families.get(name)
    if (family === undefined) families.set(name, [pair])
    else family.push(pair)
  }
  const lines: Array<string> = []
  for (const name of [...families.keys()].sort()) {
    const family = families.get(name)!
    const description = family.find((pair) => pair.metricKey.description._tag === "Some")?.metricKey.description
    if (description !== undefined && Option.isSome(description)) lines.push(`# HELP ${name} ${help(description.value)}`)
    lines.push(`# TYPE ${name} ${typeOf(family[0]!.metricState)}`)
    for (const pair of family) lines.push(...samples(name, pair.metricKey.tags, pair.metricState))
  }
  return lines.join("\n") + "\n"
}

/** A scrape: the process figures read now, then every metric in the registry. */
export const scrape = Effect.zipRight(sampleProcess, Effect.map(Metric.snapshot, render))
