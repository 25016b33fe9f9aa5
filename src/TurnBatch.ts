import { Cause, Effect } from "effect"

/**
 * Gathers the items asked for during one turn of the event loop and fetches them with one call, as DataLoader does.
 * Node parses the requests of every socket ready in a turn (and runs the callbacks of every reply that arrived) before
 * the turn's check phase, where the batch goes out: under load one call answers many requests, and a lone request
 * waits for nothing but the end of its own turn. Items with the same key in one batch are fetched once.
 *
 * `fetch` answers with one value per distinct item, in the order given. It runs as one fiber of its own (`runFork`,
 * the owner's runtime), so that no asker's interruption cuts it short for the others; its failure fails every
 * waiter, each of which then counts and recovers from it as if it had asked alone.
 *
 * Effect's own `RequestResolver` batches only the requests of one fiber's `forEach`; gathering across fibers and
 * then running its machinery cost a database miss much more CPU than this (measured: the README's benchmarks).
 */
export const make = <S, A, E>(options: {
  readonly keyOf: (item: S) => string
  readonly fetch: (items: ReadonlyArray<S>) => Effect.Effect<ReadonlyArray<A>, E>
  readonly runFork: (effect: Effect.Effect<void>) => unknown
}): ((item: S) => Effect.Effect<A, E>) => {
  const { fetch, keyOf, runFork } = options
  let waiting = new Map<string, { readonly item: S; readonly resumes: Array<(result: Effect.Effect<A, E>) => void> }>()

  const flush = () => {
    const batch = Array.from(waiting.values())
    waiting = new Map()
    runFork(
      Effect.matchCause(
        Effect.suspend(() => fetch(batch.map(({ item }) => item))),
        {
          onFailure: (cause) => {
            const failure = Effect.failCause(Cause.isInterruptedOnly(cause) ? Cause.die("batch interrupted") : cause)
            for (const { resumes } of batch) for (const resume of resumes) resume(failure)
          },
          onSuccess: (values) => {
            for (let index = 0; index < batch.length; index++) {
              const result = Effect.succeed(values[index]!)
              for (const resume of batch[index]!.resumes) resume(result)
            }
          }
        }
      )
    )
  }

  // A waiter that is interrupted stays in its batch: its fiber ignores the late answer, and the item may be shared.
  return (item) =>
    Effect.async<A, E>((resume) => {
      const key = keyOf(item)
      const entry = waiting.get(key)
      if (entry !== undefined) return void entry.resumes.push(resume)
      if (waiting.size === 0) setImmediate(flush)
      waiting.set(key, { item, resumes: [resume] })
    })
}
