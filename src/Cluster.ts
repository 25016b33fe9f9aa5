import { Deferred, Effect, Runtime } from "effect"
import cluster from "node:cluster"
import type { Worker } from "node:cluster"

// WORKERS=N runs N copies of the service on one port with Node's cluster module. They share Redis and the SQLite
// file exactly as separate processes do, so the cross-process guarantees hold unchanged. What they do not share is
// memory: what must be seen whole (the counters of /api/v1/cache/stats, the dashboard's activity) is gathered from
// every worker through the primary, on request. This module knows nothing of what is gathered: a part is whatever
// the application's own layer answers for its topic, and that layer combines the parts.

export const isWorker = () => cluster.isWorker

/**
 * Messages of a gathering: a worker asks the primary for every worker's part of a `topic`; the primary only relays,
 * so what a part holds (and how parts combine) stays with the application.
 */
type GatherMessage =
  | { readonly type: "gather:ask"; readonly id: number; readonly topic: string }
  | { readonly type: "gather:collect"; readonly id: number; readonly topic: string }
  | { readonly type: "gather:part"; readonly id: number; readonly part: unknown }
  | { readonly type: "gather:all"; readonly id: number; readonly parts: ReadonlyArray<unknown> }

const isGatherMessage = (message: unknown): message is GatherMessage =>
  typeof message === "object" && message !== null && String((message as { type?: unknown }).type).startsWith("gather:")

/**
 * In a worker: answers the primary's gatherings of `topic` with this worker's part, until the returned function is
 * called. Outside a worker it does nothing.
 */
export const answerGathers = (topic: string, part: () => unknown): (() => void) => {
  if (!cluster.isWorker) return () => {}
  const answer = (message: unknown) => {
    if (!isGatherMessage(message) || message.type !== "gather:collect" || message.topic !== topic) return
    process.send?.({ type: "gather:part", id: message.id, part: part() } satisfies GatherMessage)
  }
  process.on("message", answer)
  return () => void process.off("message", answer)
}

let gatherings = 0
let gatherListening = false
const gatherWaiting = new Map<number, (parts: ReadonlyArray<unknown>) => void>()

/** In a worker: every worker's part of `topic` (this one's included), through the primary. */
export const gather = (topic: string): Effect.Effect<ReadonlyArray<unknown>> =>
  Effect.async<ReadonlyArray<unknown>>((resume) => {
    if (!gatherListening) {
      gatherListening = true
      process.on("message", (message: unknown) => {
        if (!isGatherMessage(message) || message.type !== "gather:all") return
        gatherWaiting.get(message.id)?.(message.parts)
        gatherWaiting.delete(message.id)
      })
    }
    const id = ++gatherings
    gatherWaiting.set(id, (parts) => resume(Effect.succeed(parts)))
    process.send?.({ type: "gather:ask", id, topic } satisfies GatherMessage)
    return Effect.sync(() => gatherWaiting.delete(id))
  })

// A worker that does not answer a collection in time (busy, or dying) is left out of that one answer.
const collectMillis = 1_000
// A worker that crashes is replaced, but not in a tight loop if it crashes at start.
const respawnMillis = 1_000

/**
 * The primary: starts `count` workers (the first alone, so the database is migrated once), replaces any that dies,
 * relays the gatherings workers ask for, and on interruption (SIGINT/SIGTERM) stops them all gracefully and
 * waits for them: each drains its own connections before it exits.
 */
export const supervise = (count: number) =>
  Effect.gen(function* () {
    // Node's callbacks log through the caller's runtime: its logger is the one LOG_FORMAT and LOG_LEVEL chose.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    let stopping = false
    const workers = new Set<Worker>()
    let collections = 0

    const relay = (asker: Worker, ask: { readonly id: number; readonly topic: string }) => {
      const id = ++collections
      const parts: Array<unknown> = []
      const expected = [...workers].filter((worker) => worker.isConnected())
      const finish = () => {
        clearTimeout(timer)
        for (const worker of expected) worker.off("message", onPart)
        if (asker.isConnected()) asker.send({ type: "gather:all", id: ask.id, parts } satisfies GatherMessage)
      }
      const onPart = (message: unknown) => {
        if (!isGatherMessage(message) || message.type !== "gather:part" || message.id !== id) return
        parts.push(message.part)
        if (parts.length === expected.length) finish()
      }
      const timer = setTimeout(finish, collectMillis)
      for (const worker of expected) {
        worker.on("message", onPart)
        worker.send({ type: "gather:collect", id, topic: ask.topic } satisfies GatherMessage)
      }
    }

    const fork = () => {
      const worker = cluster.fork()
      workers.add(worker)
      worker.on("message", (message: unknown) => {
        if (isGatherMessage(message) && message.type === "gather:ask") relay(worker, message)
      })
      worker.once("exit", (code, signal) => {
        workers.delete(worker)
        if (stopping) return
        runFork(Effect.logError(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`))
        setTimeout(() => stopping || fork(), respawnMillis)
      })
      return worker
    }

    const first = fork()
    yield* Effect.async<void>((resume) => {
      first.once("listening", () => resume(Effect.void))
      first.once("exit", () => resume(Effect.void))
    })
    for (let i = 1; i < count; i++) fork()
    yield* Effect.logInfo(`${count} workers serving`)

    const allGone = yield* Deferred.make<void>()
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        stopping = true
        for (const worker of workers) {
          worker.once("exit", () => workers.size === 0 && Deferred.unsafeDone(allGone, Effect.void))
          worker.process.kill("SIGTERM")
        }
        if (workers.size > 0) yield* Deferred.await(allGone)
      })
    )
    return yield* Effect.never
  }).pipe(Effect.scoped)
