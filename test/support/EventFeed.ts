import * as Http from "node:http"

// A client of /api/v1/cache/events that keeps every event it received and how the stream ended.

export interface FeedEvent {
  readonly at: string
  readonly interval_ms: number
  readonly stats: Record<string, number>
  readonly rates: Record<"hit" | "miss" | "cache_error" | "write" | "http_error", number>
  readonly latency_ms: Record<"hit" | "miss", { p50: number; p99: number; count: number } | null>
  readonly health: { status: string; database: string; cache: string; circuit: string | null }
  readonly recent: ReadonlyArray<{
    at: number
    method: string
    path: string
    status: number
    x_cache: string | null
    cache_error: boolean
    duration_ms: number
  }>
}

export interface Feed {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly events: () => ReadonlyArray<FeedEvent>
  /** Resolves with `clean: true` when the body ended properly (its last chunk), `false` when it was cut. */
  readonly ended: Promise<{ readonly clean: boolean; readonly at: number }>
  readonly close: () => void
}

/** Opens the feed; resolves once its headers arrived. */
export const openFeed = (port: number): Promise<Feed> =>
  new Promise((resolve, reject) => {
    const request = Http.get({ host: "127.0.0.1", port, path: "/api/v1/cache/events", agent: false }, (response) => {
      const events: Array<FeedEvent> = []
      let buffer = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => {
        buffer += chunk
        let end: number
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data: "))
            .map((line) => line.slice(6))
            .join("\n")
          if (data !== "") events.push(JSON.parse(data))
        }
      })
      const ended = new Promise<{ clean: boolean; at: number }>((done) => {
        response.once("end", () => done({ clean: true, at: performance.now() }))
        response.once("aborted", () => done({ clean: false, at: performance.now() }))
        response.once("error", () => done({ clean: false, at: performance.now() }))
        response.once("close", () => done({ clean: response.complete, at: performance.now() }))
      })
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        events: () => events,
        ended,
        close: () => request.destroy()
      })
    })
    request.on("error", reject)
  })

/** Waits until the feed has an event that satisfies `check`, for at most `timeoutMs`. */
export const eventWhere = async (
  feed: Feed,
  check: (event: FeedEvent) => boolean,
  timeoutMs = 5_000
): Promise<FeedEvent> => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const found = feed.events().find(check)
    if (found !== undefined) return found
    if (performance.now() > deadline) {
      throw new Error(`no such event within ${timeoutMs} ms; last: ${JSON.stringify(feed.events().at(-1))}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}
