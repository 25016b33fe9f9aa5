import { Effect } from "effect"

/**
 * Gathers the items asked for during one turn of the event loop and fetches them with one call, as DataLoader does.
 * Node parses the requests of every socket ready in a turn before the turn's check phase, where the batch goes out:
 * under load one command answers many requests, and a lone request waits for nothing but the end of its own turn.
 * Items with the same key in one batch are fetched once.
 *
 * `fetch` answers with one value per distinct item, in the order given; its failure fails every waiter, each of which
 * then counts and recovers from it as if it had asked alone.
 */
export const make = <S, A, E>(options: {
  readonly keyOf: (item: S) => string
  readonly fetch: (items: ReadonlyArray<S>) => Promise<ReadonlyArray<A>>
  readonly onError: (cause: unknown) => E
}): ((item: S) => Effect.Effect<A, E>) => {
  const { fetch, keyOf, onError } = options
  let waiting = new Map<string, { readonly item: S; readonly resumes: Array<(result: Effect.Effect<A, E>) => void> }>()

  const flush = () => {
    const batch = Array.from(waiting.values())
    waiting = new Map()
    const fail = (cause: unknown) => {
      const failure = Effect.fail(onError(cause))
      for (const { resumes } of batch) for (const resume of resumes) resume(failure)
    }
    const answer = (values: ReadonlyArray<A>) => {
      for (let index = 0; index < batch.length; index++) {
        const result = Effect.succeed(values[index]!)
        for (const resume of batch[index]!.resumes) resume(result)
      }
    }
    try {
      fetch(batch.map(({ item }) => item)).then(answer, fail)
    } catch (cause) {
      fail(cause)
    }
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
