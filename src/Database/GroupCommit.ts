import { SqlError } from "@effect/sql/SqlError"
import type Sqlite from "better-sqlite3"
import { Effect, Exit } from "effect"
import { dbCommits, noLabels } from "../Metrics.js"

/** A statement's error as the SQL client reports one, SQLite's own (its code included) as the cause. */
export const failed = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })

interface Queued {
  readonly run: () => unknown
  readonly resume: (exit: Exit.Exit<unknown, SqlError>) => void
}

/**
 * The writes asked for during one turn of the event loop, committed as one transaction on `db`: one sync of the log
 * for all of them. In WAL mode with `synchronous = FULL` (set by Statements.ts: an answered write survives a power
 * cut) every commit waits for an fsync, which here is the event loop waiting, about 130 µs a commit on this project's
 * test machines against 30 µs for the statement itself. A lone write waits for nothing but the end of its turn, and
 * then commits on its own.
 *
 * Each write stays its own: a statement that fails (a CHECK, say) is undone alone, as SQLite undoes a failed statement
 * and keeps the transaction, and only that write fails. An error that makes SQLite roll the whole transaction back (a
 * full disk, an I/O error) or refuses the commit fails every write of the group, none of which has answered yet, so no
 * client is told of a write the file does not hold. `BEGIN IMMEDIATE` refused (another connection writes) fails them
 * all with SQLITE_BUSY, which `Database.write` retries, each write again in a later turn's group.
 */
export const make = (db: Sqlite.Database) => {
  let queued: Array<Queued> = []

  /** What `run` returned, or its error as the SQL client reports one. */
  const attempt = (run: () => unknown): Exit.Exit<unknown, SqlError> => {
    try {
      return Exit.succeed(run())
    } catch (cause) {
      return Exit.fail(failed(cause))
    }
  }

  const settleAll = (batch: ReadonlyArray<Queued>, exit: Exit.Exit<unknown, SqlError>) => {
    for (const { resume } of batch) resume(exit)
  }

  const flush = () => {
    const batch = queued
    queued = []
    // Alone, a write is its own transaction: SQLite's autocommit syncs once, as the group would, without the two
    // extra statements. Never inside a transaction a failed ROLLBACK left open, where it would not commit: BEGIN
    // below then fails it instead.
    if (batch.length === 1 && !db.inTransaction) {
      const exit = attempt(batch[0]!.run)
      if (Exit.isSuccess(exit)) dbCommits.unsafeUpdate(1, noLabels)
      return batch[0]!.resume(exit)
    }
    const begun = attempt(() => db.exec("BEGIN IMMEDIATE"))
    if (Exit.isFailure(begun)) return settleAll(batch, begun)
    const exits: Array<Exit.Exit<unknown, SqlError>> = []
    for (const { run } of batch) {
      const exit = attempt(run)
      // A failure that ended the transaction took the group's earlier writes with it.
      if (Exit.isFailure(exit) && !db.inTransaction) return settleAll(batch, exit)
      exits.push(exit)
    }
    const committed = attempt(() => db.exec("COMMIT"))
    if (Exit.isFailure(committed)) {
      if (db.inTransaction) db.exec("ROLLBACK")
      return settleAll(batch, committed)
    }
    dbCommits.unsafeUpdate(1, noLabels)
    batch.forEach(({ resume }, at) => resume(exits[at]!))
  }

  /** `run` (a prepared statement's run or all) in this turn's transaction, with what it returned once committed. */
  return <A>(run: () => A): Effect.Effect<A, SqlError> =>
    Effect.async<A, SqlError>((resume) => {
      if (queued.length === 0) setImmediate(flush)
      queued.push({ run, resume: resume as Queued["resume"] })
    })
}
