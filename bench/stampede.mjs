// Stampede: many simultaneous reads of one cold key. All sockets are opened first, then every request is written
// in the same tick, so the reads reach the server together. Usable alone:
//   node bench/stampede.mjs <port> <id> [readers]   (PUT the id first yourself to make it cold)
import { connect } from "node:net"
import { fileURLToPath } from "node:url"

const openSocket = (port) =>
  new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port })
    socket.once("connect", () => resolve(socket))
    socket.once("error", reject)
  })

const parse = (text) => {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
  const cache = /\r\nx-cache: *(\w+)/i.exec(text)?.[1]?.toUpperCase() ?? "NONE"
  return { status, cache }
}

/** Fires `readers` GETs of `path` at once; answers counted by status and X-Cache. Bounded by `timeoutMs`. */
export const fireAtOnce = async ({ port, path, readers = 200, timeoutMs = 10_000 }) => {
  const sockets = await Promise.all(Array.from({ length: readers }, () => openSocket(port)))
  const answers = sockets.map(
    (socket) =>
      new Promise((resolve) => {
        const chunks = []
        socket.on("data", (chunk) => chunks.push(chunk))
        socket.on("end", () => resolve(parse(Buffer.concat(chunks).toString("latin1"))))
        socket.on("error", () => resolve({ status: 0, cache: "ERROR" }))
      })
  )
  const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`
  const started = performance.now()
  for (const socket of sockets) socket.write(request)
  let timer
  const timedOut = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  })
  const outcome = await Promise.race([Promise.all(answers), timedOut])
  clearTimeout(timer)
  const wallMs = Math.round((performance.now() - started) * 10) / 10
  for (const socket of sockets) socket.destroy()
  if (outcome === "timeout") throw new Error(`stampede: no complete answer within ${timeoutMs} ms`)
  const statuses = {}
  const xCache = {}
  for (const { status, cache } of outcome) {
    statuses[status] = (statuses[status] ?? 0) + 1
    xCache[cache] = (xCache[cache] ?? 0) + 1
  }
  return { readers, statuses, x_cache: xCache, wall_ms: wallMs }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, id, readers] = process.argv.slice(2).map(Number)
  if (!port || !id) {
    console.error("usage: node bench/stampede.mjs <port> <id> [readers]")
    process.exit(2)
  }
  console.log(JSON.stringify(await fireAtOnce({ port, path: `/api/v1/products/${id}`, readers: readers || 200 })))
}
