/** One answered (or, as 499, abandoned) request, as HTTP observability recorded it. */
export interface Answer {
  /** The request's method, or `OTHER` for one outside the standard few: clients choose it. */
  readonly method: string
  /** The request target as sent, query included. */
  readonly path: string
  readonly status: number
  /** The answer's `X-Cache` header, if it had one. */
  readonly xCache: string | undefined
  readonly elapsedMillis: number
  /** The cache failed this request's read (answered from the database; its `X-Cache` says MISS). */
  readonly cacheFailed: boolean
}

/** Called on the request path after each answer: it must be quick and must not throw. */
export type Listener = (answer: Answer) => void

// Read on every answer, the fast path's cache hits included, and changed only when a subscriber comes or goes: so a
// plain array, replaced whole on each change, rather than a PubSub or a queue (an allocation and a fiber hand-off
// per request). With nobody subscribed an answer costs one length test, and `Answer` is not even built.
let listeners: ReadonlyArray<Listener> = []

/** Whether anyone listens: tested before an `Answer` is built. */
export const heard = () => listeners.length > 0

/** Hands one answer to every listener; callers test `heard()` first. */
export const publish = (answer: Answer) => {
  for (let i = 0; i < listeners.length; i++) listeners[i]!(answer)
}

/** Calls `listener` after each answer from now on; the returned function stops it (once, however often called). */
export const subscribe = (listener: Listener): (() => void) => {
  listeners = [...listeners, listener]
  let subscribed = true
  return () => {
    if (!subscribed) return
    subscribed = false
    const at = listeners.indexOf(listener)
    listeners = [...listeners.slice(0, at), ...listeners.slice(at + 1)]
  }
}
