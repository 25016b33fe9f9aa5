// What a run was asked for: the command line and the BENCH_* variables, read once and checked before anything starts.

/** A mistake in how the bench was called: one line, no stack, before anything starts. */
export class UsageError extends Error {}

export const productCount = 1000
export const stampedeReaders = 200
// scale-workers: the WORKERS of its service instances; each row's ratio is over the first one's req/s. "auto" is
// one worker per available core, as the service reads it; a service that refuses it runs the scenario without it.
export const scaleWorkers = [1, 2, "auto"]
// The targets are judged at this connection count (issue 11); other counts are reported only.
export const targetConns = 50

const envInt = (name, fallback, min = 1) => {
  const text = process.env[name]
  if (text === undefined || text === "") return fallback
  const value = Number(text)
  if (!Number.isInteger(value) || value < min) throw new UsageError(`${name} must be an integer >= ${min}, got ${text}`)
  return value
}

const conns = () =>
  (process.env.BENCH_CONNS || "10,50").split(",").map((c) => {
    const n = Number(c)
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`BENCH_CONNS must list positive integers, got ${c}`)
    return n
  })

/** The settings of this run; throws a UsageError for a bad value or a combination that cannot mean anything. */
export const readSettings = (argv = process.argv) => {
  const smoke = argv.includes("--smoke")
  const renderAt = argv.indexOf("--render")
  const settings = {
    smoke,
    render: renderAt === -1 ? undefined : argv[renderAt + 1],
    seconds: smoke ? 1 : envInt("BENCH_SECONDS", 3),
    rounds: smoke ? 1 : envInt("BENCH_ROUNDS", 5),
    warmupSeconds: smoke ? 1 : envInt("BENCH_WARMUP", 2, 0),
    conns: conns(),
    enforce: process.env.BENCH_ENFORCE === "1",
    keepTmp: process.env.BENCH_KEEP_TMP === "1"
  }
  if (settings.render === undefined && renderAt !== -1) throw new UsageError("--render needs a results file")
  // Speed is reported, not gated, unless someone on a quiet machine asks for it: a smoke measures no speed, and a
  // run without the targets' connection count has nothing to judge, so neither can honour the request.
  if (settings.enforce && smoke) {
    throw new UsageError("BENCH_ENFORCE=1 judges speed, which a smoke run does not measure: unset it for --smoke")
  }
  if (settings.enforce && !settings.conns.includes(targetConns)) {
    throw new UsageError(
      `BENCH_ENFORCE=1 judges the targets at ${targetConns} connections: add ${targetConns} to BENCH_CONNS`
    )
  }
  return settings
}
