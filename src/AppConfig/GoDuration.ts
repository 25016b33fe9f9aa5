import { Duration, Option } from "effect"

// Go's time.ParseDuration grammar, so `CACHE_TTL=1h30m` means what it meant to the Go original.
const unitNanos: Record<string, number> = {
  ns: 1,
  us: 1e3,
  µs: 1e3,
  μs: 1e3,
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9
}

const whole = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/
const part = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g

/** Parses `300ms`, `30s`, `5m`, `1h30m`, `1.5h`; `0` alone is zero, as in Go. */
export const parse = (text: string): Option.Option<Duration.Duration> => {
  const input = text.trim()
  if (input === "0" || input === "+0" || input === "-0") return Option.some(Duration.zero)
  if (!whole.test(input)) return Option.none()
  if (input.startsWith("-")) return Option.none()
  let nanos = 0
  for (const [, amount, unit] of input.matchAll(part)) {
    nanos += Number(amount) * unitNanos[unit!]!
  }
  return Number.isFinite(nanos) ? Option.some(Duration.nanos(BigInt(Math.round(nanos)))) : Option.none()
}
