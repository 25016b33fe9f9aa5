// The load: wrk with one thread and a Lua script from bench/, pinned beside Redis.
import { spawnSync } from "node:child_process"
import { join } from "node:path"
import { productCount } from "./settings.mjs"
import { benchDir, have, spawnChild, waitExit, wrkCpu } from "./process.mjs"

export const ensureWrk = () => {
  if (have("wrk")) return
  if (process.getuid?.() === 0 && have("apt-get")) {
    console.log("wrk is missing; installing the Debian package (apt-get update && apt-get install -y wrk)")
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" }
    spawnSync("apt-get", ["update"], { stdio: "inherit", env })
    spawnSync("apt-get", ["install", "-y", "wrk"], { stdio: "inherit", env })
    if (have("wrk")) return
  }
  throw new Error("wrk is missing: install it with `sudo apt-get update && sudo apt-get install -y wrk`")
}

const toMs = (value, unit) => Number(value) * { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]

export const parseWrk = (text) => {
  const number = (regex) => Number(regex.exec(text)?.[1] ?? NaN)
  const percentile = (p) => {
    const match = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m").exec(text)
    return match ? toMs(match[1], match[2]) : NaN
  }
  const sockets = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  return {
    rps: number(/Requests\/sec:\s+([\d.]+)/),
    p50_ms: percentile(50),
    p99_ms: percentile(99),
    requests: number(/(\d+) requests in/),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/) || 0,
    socket_errors: sockets
      ? { connect: +sockets[1], read: +sockets[2], write: +sockets[3], timeout: +sockets[4] }
      : { connect: 0, read: 0, write: 0, timeout: 0 }
  }
}

export const runWrk = async ({ port, script, conns, duration }) => {
  const args = ["-t1", `-c${conns}`, `-d${duration}s`, "--latency", "-s", join(benchDir, script)]
  args.push(`http://127.0.0.1:${port}`)
  const child = spawnChild(`wrk ${script}`, "wrk", args, {
    cpu: wrkCpu,
    env: { ...process.env, BENCH_IDS: String(productCount) }
  })
  let out = ""
  // Pipes: no log file was given.
  child.stdout?.on("data", (chunk) => (out += chunk))
  child.stderr?.on("data", (chunk) => (out += chunk))
  if (!(await waitExit(child, (duration + 20) * 1000))) {
    child.kill("SIGKILL")
    throw new Error(`wrk did not finish within ${duration + 20} s`)
  }
  const parsed = parseWrk(out)
  if (child.exitState?.code !== 0 || !Number.isFinite(parsed.rps)) {
    throw new Error(`wrk failed (${JSON.stringify(child.exitState)}):\n${out}`)
  }
  return parsed
}
