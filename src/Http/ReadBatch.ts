import { Exit, Runtime } from "effect"
import type { ProductService, CatalogRead } from "../ProductService.js"
import * as ReadAnswers from "./ReadAnswers.js"

/** A read waiting for its turn's batch. */
export interface Queued {
  readonly catalog: CatalogRead
}

export interface Handlers<Q extends Queued> {
  /** Whether a read's client is gone: such a read is left out of the batch (and told, with nothing). */
  readonly gone: (read: Q) => boolean
  /** Gets what the batch found for a read: a value, the effect that answers it, or nothing for a read left out. */
  readonly answer: (read: Q, given: ReadAnswers.BatchAnswer | undefined) => void
}

/**
 * Reads that arrive in one turn of the event loop wait for its check phase and are served together by one fiber
 * (ProductService.getMany): one cache lookup for all, and one database load and one fill for the misses whose leases
 * it takes. Each is answered as soon as its answer is known: a value, or the effect that answers it (a remembered
 * absence, a load another reader is doing, a pending invalidation), which its caller runs alone. A fiber per request
 * was most of what a read cost beyond the work the plain Node baseline does too.
 *
 * The one place the fast path calls `getMany`.
 */
export const make = <Q extends Queued>(
  products: ProductService,
  runtime: Runtime.Runtime<never>,
  { answer: answerRead, gone }: Handlers<Q>
) => {
  const run = Runtime.runCallback(runtime)
  let batch: Array<Q> = []

  const flush = () => {
    const reads = batch.filter((read) => !gone(read) || void answerRead(read, undefined))
    batch = []
    const answered = new Array<boolean>(reads.length).fill(false)
    const answer = (at: number, given: ReadAnswers.BatchAnswer) => {
      if (answered[at]) return
      answered[at] = true
      answerRead(reads[at]!, given)
    }
    run(
      products.getMany(
        reads.map((read) => read.catalog),
        answer
      ),
      {
        // It never fails; should it die, whatever it left unanswered is read alone.
        onExit: (exit) => {
          if (Exit.isFailure(exit)) reads.forEach(({ catalog }, at) => answer(at, products.get(catalog)))
        }
      }
    )
  }

  return (read: Q) => {
    if (batch.length === 0) setImmediate(flush)
    batch.push(read)
  }
}
