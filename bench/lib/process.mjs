// The processes a run starts (servers, Redis, wrk), where they run, and the CPU they use. Nothing started here may
// outlive the bench.
import { spawn, spawnSync } from "node:child_process"
import { openSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { cpus } from "node:os"
import { dirname, resolve } from "node:path"
import { fileURLToPath } from "node:url"

export const benchDir = resolve(dirname(fileURLToPath(import.meta.url)), "..")
export const root = resolve(benchDir, "..")

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms))

export const have = (command) => spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0

export const versionOf = (command, args) => {
  const result = spawnSync(command, args, { encoding: "utf8" })
  return `${result.stdout ?? ""}${result.stderr ?? ""}`.split("\n")[0].trim()
}

export const pinning = have("taskset") && cpus().length >= 2
export const wrkCpu = "0"
export const serverCpu = "1"
/** `cpu` null: free to run on any core (the scale-workers instances). */
const pinned = (cpu, command, args) =>
  pinning && cpu !== null ? ["taskset", ["-c", cpu, command, ...args]] : [command, args]

/**
 * A process the bench started: its name for messages, its log file, and how it ended once it has.
 * @typedef {import("node:child_process").ChildProcess & {
 *   label: string
 *   log: string | undefined
 *   exitState: { code: number | null; signal: NodeJS.Signals | null; error?: string } | undefined
 * }} Child
 */

/** @type {Set<Child>} */
const children = new Set()

/**
 * Starts `command` (found through PATH) on `cpu`; its output goes to `log`, or to pipes when no log is given.
 * @param {string} name
 * @param {string} command
 * @param {ReadonlyArray<string>} args
 * @param {{ env?: NodeJS.ProcessEnv; cpu?: string | null; log?: string }} [options]
 * @returns {Child}
 */
export const spawnChild = (name, command, args, { env = process.env, cpu = serverCpu, log } = {}) => {
  const [file, argv] = pinned(cpu, command, args)
  const out = log === undefined ? "pipe" : openSync(log, "a")
  const child = /** @type {Child} */ (spawn(file, argv, { cwd: root, env, stdio: ["ignore", out, out] }))
  child.label = name
  child.log = log
  child.exitState = undefined
  children.add(child)
  child.once("exit", (code, signal) => {
    child.exitState = { code, signal }
    children.delete(child)
  })
  child.once("error", (error) => {
    child.exitState = { code: -1, signal: null, error: error.message }
    children.delete(child)
  })
  return child
}

export const waitExit = (child, ms) =>
  child.exitState !== undefined
    ? Promise.resolve(true)
    : Promise.race([new Promise((done) => child.once("exit", () => done(true))), sleep(ms).then(() => false)])

const stopChild = async (child, graceMs = 10_000) => {
  if (child.exitState !== undefined) return
  const started = Date.now()
  child.kill("SIGTERM")
  if (await waitExit(child, graceMs)) {
    if (Date.now() - started > 2000) console.error(`${child.label} took ${Date.now() - started} ms to stop`)
    return
  }
  console.error(`${child.label} ignored SIGTERM for ${graceMs} ms; killing it`)
  child.kill("SIGKILL")
  await waitExit(child, 2000)
}

/** Stops every child still running: servers first, Redis (`last`) after, so none of them logs a lost cache. */
export const stopAll = async (last) => {
  const list = [...children]
  await Promise.all(list.filter((c) => c.label !== last).map((c) => stopChild(c)))
  await Promise.all(list.filter((c) => c.label === last).map((c) => stopChild(c)))
}

// Last resort when the process leaves by any path: nothing of ours may outlive it.
process.on("exit", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL")
    } catch {
      // already gone
    }
  }
})

export const logTail = (child) => {
  try {
    return readFileSync(child.log, "utf8").split("\n").slice(-15).join("\n")
  } catch {
    return "(no log)"
  }
}

/** A free port on 127.0.0.1 that no other server of this run was given (`taken`). */
export const freePort = (taken) =>
  new Promise((done, fail) => {
    const server = createServer()
    server.unref()
    server.on("error", fail)
    server.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (server.address())
      server.close(() => done(port))
    })
  }).then((port) => (taken.has(port) ? freePort(taken) : (taken.add(port), port)))

// ---------------------------------------------------------------- cpu

export const clockTicks = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100

const readStat = (pid) => {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
    // after the comm: state(3) ppid(4) ... utime(14) stime(15), counted from field 3 at index 0
    return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return undefined
  }
}

/** CPU seconds used so far by `pid` and by each of its descendants (cluster mode's workers), by pid. */
export const cpuTree = (pid) => {
  const parents = new Map()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    const stat = readStat(entry)
    if (stat !== undefined) parents.set(Number(entry), stat)
  }
  const byPid = new Map()
  const tree = [pid]
  for (let i = 0; i < tree.length && i < 10_000; i++) {
    byPid.set(tree[i], (parents.get(tree[i])?.ticks ?? 0) / clockTicks)
    for (const [child, stat] of parents) if (stat.ppid === tree[i]) tree.push(child)
  }
  return byPid
}

/** CPU seconds used so far by `pid` and its descendants. */
export const cpuSeconds = (pid) => [...cpuTree(pid).values()].reduce((a, b) => a + b, 0)

// ---------------------------------------------------------------- memory

/** Restarts the peak-RSS count (VmHWM) of `pid` and each of its descendants; a process that cannot is skipped. */
export const resetPeakRss = (pid) => {
  for (const each of cpuTree(pid).keys()) {
    try {
      writeFileSync(`/proc/${each}/clear_refs`, "5")
    } catch {
      // not ours, or gone
    }
  }
}

/** The peak RSS (MB) of `pid`'s process tree since its last reset: the sum of each process's VmHWM. */
export const peakRssMb = (pid) => {
  let kb = 0
  for (const each of cpuTree(pid).keys()) {
    try {
      kb += Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${each}/status`, "utf8"))?.[1] ?? 0)
    } catch {
      // gone
    }
  }
  return Math.round(kb / 102.4) / 10
}
