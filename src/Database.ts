import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Effect, Schedule, ScheduleDecision } from "effect"
import * as AppConfig from "./AppConfig.js"
import { dbBusyRetries, noLabels } from "./Metrics.js"

/**
 * better-sqlite3's SQLITE_BUSY or SQLITE_LOCKED (extended codes included): another connection holds a lock the
 * statement needs, and the statement did nothing. Every statement here runs on its own (no explicit transaction), so
 * running it again is safe.
 */
export const isBusyCause = (cause: unknown): boolean => {
  const code = (cause as { readonly code?: unknown } | null | undefined)?.code
  return typeof code === "string" && /^SQLITE_(BUSY|LOCKED)/.test(code)
}

export const isBusy = (error: SqlError): boolean => isBusyCause(error.cause)

/** What the latest write ran into: nothing, another connection's lock, or an error (a full disk, say). */
export type WriteState = "ok" | "busy" | "failing"

/** How long a write's trouble stays news for /health when no write follows to say otherwise. */
const recentMillis = 30_000

/**
 * Statements on an SQLite file that other processes may lock (a second instance, a backup, an admin shell).
 *
 * SQLite's own busy handler waits for a lock by sleeping the thread, which here is the event loop: every request,
 * cache hits and /health included, would stop with it. So the connection does not wait (its busy timeout is 0,
 * Database/Sql.ts); a busy statement is run again on an Effect schedule instead, with the loop free in between, until
 * `DB_BUSY_TIMEOUT` has passed. Then its SqlError stands, and the request answers 503 like any database failure.
 */
export class Database extends Effect.Service<Database>()("Database", {
  effect: Effect.gen(function* () {
    const bound = yield* AppConfig.dbBusyTimeout
    const counted = Effect.sync(() => dbBusyRetries.unsafeUpdate(1, noLabels))
    // Short first pauses, as most locks are held for milliseconds; none above 100 ms, so a released lock is taken
    // soon; jittered, so processes waiting on the same lock do not retry in step.
    const whileBusy = Schedule.exponential("1 millis").pipe(
      Schedule.either(Schedule.spaced("100 millis")),
      Schedule.jittered,
      Schedule.whileInput(isBusy),
      Schedule.upTo(bound),
      Schedule.onDecision((_, decision) => (ScheduleDecision.isContinue(decision) ? counted : Effect.void))
    )
    // A refused statement runs again at once, then on the schedule. Entered only after a refusal: set up for every
    // statement, the schedule cost more than the query.
    const waitingWhileBusy = <A>(statement: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
      Effect.catchIf(statement, isBusy, () => Effect.zipRight(counted, Effect.retry(statement, whileBusy)))

    let latest: { readonly state: WriteState; readonly at: number } = { state: "ok", at: 0 }
    const note = (state: WriteState) =>
      Effect.map(Clock.currentTimeMillis, (at) => {
        latest = { state, at }
      })

    /** A statement that only reads; in WAL mode it is refused only in rare moments (another connection's recovery). */
    const read = waitingWhileBusy

    const outcome = <A>(retried: Effect.Effect<A, SqlError>) =>
      Effect.tapBoth(retried, {
        onFailure: (error) => note(isBusy(error) ? "busy" : "failing"),
        onSuccess: () => note("ok")
      })

    /**
     * A statement that writes: it waits for the write lock, and its outcome is what `writes` reports. A success after
     * a success changes nothing `writes` can tell (it reports "ok" however old), so the usual write notes nothing.
     */
    const write = <A>(statement: Effect.Effect<A, SqlError>): Effect.Effect<A, SqlError> =>
      Effect.matchEffect(statement, {
        onSuccess: (value) => (latest.state === "ok" ? Effect.succeed(value) : Effect.as(note("ok"), value)),
        onFailure: (error) =>
          isBusy(error)
            ? // Noted at the first refusal, so /health tells while the lock is still held.
              Effect.zipRight(note("busy"), outcome(Effect.zipRight(counted, Effect.retry(statement, whileBusy))))
            : Effect.zipRight(note("failing"), Effect.fail(error))
      })

    /** The latest write's trouble, if it is recent; for /health. */
    const writes: Effect.Effect<WriteState> = Effect.map(Clock.currentTimeMillis, (now) =>
      now - latest.at < recentMillis ? latest.state : "ok"
    )

    return { read, write, writes } as const
  })
}) {}
