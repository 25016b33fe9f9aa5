import { Effect, Fiber, Queue } from "effect"
import type { Scope } from "effect"

/** One producer, any number of readers; see `make`. */
export interface Broadcast {
  /** What is published from now on (the latest message first, if there is one), for as long as the scope lasts. */
  readonly subscribe: Effect.Effect<Queue.Dequeue<Uint8Array>, never, Scope.Scope>
  readonly readers: () => number
}

// Messages a reader may fall behind by before it loses the oldest: a slow reader never holds up the others.
const backlog = 4

/**
 * Runs `produce` while at least one reader is subscribed, and hands every message it publishes to each reader as the
 * same bytes: the work of a message is done once, whatever the number of readers. The first reader starts the
 * producer, the last one to leave interrupts it. A reader that joins a running producer gets its latest message
 * at once, so it does not wait a tick for its first.
 */
export const make = (produce: (publish: (message: Uint8Array) => void) => Effect.Effect<never>) =>
  Effect.sync((): Broadcast => {
    const readers = new Set<Queue.Queue<Uint8Array>>()
    let latest: Uint8Array | undefined
    let producer: Fiber.RuntimeFiber<never> | undefined

    const publish = (message: Uint8Array) => {
      latest = message
      for (const reader of readers) Queue.unsafeOffer(reader, message)
    }

    const join = Effect.flatMap(Queue.sliding<Uint8Array>(backlog), (reader) =>
      Effect.gen(function* () {
        readers.add(reader)
        // Forked from an acquisition, which is uninterruptible: the producer must not inherit that.
        if (producer === undefined) producer = yield* Effect.forkDaemon(Effect.interruptible(produce(publish)))
        else if (latest !== undefined) Queue.unsafeOffer(reader, latest)
        return reader
      })
    )

    const leave = (reader: Queue.Queue<Uint8Array>) =>
      Effect.suspend(() => {
        readers.delete(reader)
        if (readers.size > 0 || producer === undefined) return Effect.void
        const stopped = producer
        producer = undefined
        latest = undefined
        return Fiber.interruptFork(stopped)
      })

    return { subscribe: Effect.acquireRelease(join, leave), readers: () => readers.size }
  })
