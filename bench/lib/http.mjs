// The bench's own requests to the servers: seeding, warming, stats and readiness. Every wait is bounded.
import { logTail, sleep } from "./process.mjs"

/**
 * @param {number} port
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 */
const send = (port, method, path, body) =>
  fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    signal: AbortSignal.timeout(10_000),
    ...(body === undefined ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) })
  })

// A kept-alive connection that the server closes as idle in the instant fetch reuses it fails the request before it
// was read; a GET is safe to send once more. fetch says only "fetch failed": the reason is in its cause.
/** @param {any} error */
const closedUnderUs = (error) => ["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"].includes(error?.cause?.code)

const sendSafely = async (port, method, path, body) => {
  try {
    return await send(port, method, path, body).catch((error) =>
      method === "GET" && closedUnderUs(error) ? send(port, method, path, body) : Promise.reject(error)
    )
  } catch (/** @type {any} */ error) {
    const cause = error?.cause?.code ?? error?.cause?.message
    throw new Error(`${method} ${path} on :${port}: ${error?.message}${cause ? ` (${cause})` : ""}`, { cause: error })
  }
}

export const request = async (port, method, path, body) => {
  const response = await sendSafely(port, method, path, body)
  const text = await response.text()
  let json
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: response.status, json, text }
}

export const expectOk = async (port, method, path, body) => {
  const answer = await request(port, method, path, body)
  if (answer.status < 200 || answer.status > 299) {
    throw new Error(`${method} ${path} on :${port} answered ${answer.status}: ${answer.text.slice(0, 200)}`)
  }
  return answer
}

/**
 * Polls `path` until it answers 200 and `ready(json)`; fails fast if the child exits. Bounded.
 * @param {import("./process.mjs").Child} child
 * @param {number} port
 * @param {string} path
 * @param {(json: any) => boolean} [ready]
 */
export const waitReady = async (child, port, path, ready = () => true, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitState !== undefined) {
      throw new Error(`${child.label} exited (${JSON.stringify(child.exitState)}) before ready:\n${logTail(child)}`)
    }
    try {
      const answer = await request(port, "GET", path)
      if (answer.status === 200 && ready(answer.json)) return
    } catch {
      // not listening yet
    }
    await sleep(100)
  }
  throw new Error(`${child.label} not ready on :${port}${path} within ${timeoutMs} ms:\n${logTail(child)}`)
}

/** Runs `task(0..count-1)` with at most `concurrency` at a time. */
export const inBatches = async (count, concurrency, task) => {
  let next = 0
  const worker = async () => {
    while (next < count) await task(next++)
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/
const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/**
 * The sum of every sample of counter `name` whose labels include `labels`, from the service's `/metrics` (the
 * Prometheus text format): e.g. database loads by id, over both outcomes, are `{ query: "findById" }`.
 */
export const scrapeCounter = async (port, name, labels) => {
  const { text } = await expectOk(port, "GET", "/metrics")
  let sum = 0
  for (const line of text.split("\n")) {
    const match = sampleLine.exec(line)
    if (match === null || match[1] !== name) continue
    const found = Object.fromEntries([...(match[2] ?? "").matchAll(labelPair)].map(([, key, value]) => [key, value]))
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) sum += Number(match[3])
  }
  return sum
}
