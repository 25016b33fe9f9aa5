import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Deferred, Duration, Effect, Exit, FiberId, Layer, Schedule } from "effect"
import Pg from "pg"
import type { Notification } from "pg"
import type { PostgresSettings } from "../AppConfig.js"
import { Database } from "../Database.js"
import { Invalidations, nextGeneration } from "../Cache/Invalidations.js"
import * as Postgres from "./Postgres.js"

/** The channel migration 0003's trigger announces every change of cache_invalidations on. */
const channel = "cache_invalidations"

interface Change {
  readonly op: "record" | "clear"
  readonly key: string
  readonly generation: string
}

/** An announcement, or nothing for a payload this service did not write (anyone may NOTIFY on the channel). */
const parseChange = (message: Notification): Change | undefined => {
  if (message.channel !== channel || message.payload === undefined) return undefined
  try {
    const change = JSON.parse(message.payload) as Partial<Change>
    return (change.op === "record" || change.op === "clear") &&
      typeof change.key === "string" &&
      typeof change.generation === "string"
      ? (change as Change)
      : undefined
  } catch {
    return undefined
  }
}

/** How often the listener's connection is asked whether it is still there. */
const heartbeat = Duration.seconds(5)

/** How long a write that recorded an invalidation waits, at most, to see its own announcement come back. */
const echoWaitMillis = 1_000

/**
 * The pending invalidations kept in PostgreSQL, shared by every instance on every host.
 *
 * A cached read must not pay a round trip to the database, so each process keeps a copy of the table in memory and
 * the reads ask that copy. The copy is kept current by LISTEN on a connection of its own: a trigger announces each
 * change at commit (migration 0003). On every (re)connection the process listens first, then reads the whole table,
 * then applies what was announced meanwhile, so nothing committed around the reload is missed (a change applied
 * twice converges to the same state). While that connection is down the copy stays as it was last seen: the window
 * the README states. A process that records an invalidation waits (briefly) until its own announcement comes back,
 * so that when the write answers, the announcement has left PostgreSQL for every listener.
 */
export const layer = (settings: PostgresSettings) =>
  Layer.scoped(
    Invalidations,
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const database = yield* Database
      let known = new Map<string, string>()
      let listening = false
      const echoes = new Map<string, Deferred.Deferred<void>>()
      const loaded = yield* Deferred.make<void>()

      const apply = (change: Change) => {
        if (change.op === "record") known.set(change.key, change.generation)
        else if (known.get(change.key) === change.generation) known.delete(change.key)
        const echo = echoes.get(change.generation)
        if (echo !== undefined) Deferred.unsafeDone(echo, Effect.void)
      }

      // A loss is logged once, not at every attempt to reconnect; the reconnection once too.
      let reported = false

      // One connection's life: listen, reload, follow the announcements; fails when the connection is lost.
      const session = Effect.gen(function* () {
        const closed = yield* Deferred.make<never, Error>()
        const client = yield* Effect.acquireRelease(
          Effect.sync(
            () => new Pg.Client({ ...Postgres.clientConfig(settings), statement_timeout: 0, query_timeout: 0 })
          ),
          (client) =>
            Effect.sync(() => {
              listening = false
              client.end().catch(() => undefined)
            })
        )
        let buffered: Array<Change> | undefined = []
        const lost = (error: Error) => {
          listening = false
          Deferred.unsafeDone(closed, Exit.fail(error))
        }
        client.on("error", lost)
        client.on("end", () => lost(new Error("connection closed")))
        client.on("notification", (message: Notification) => {
          const change = parseChange(message)
          if (change === undefined) return
          if (buffered !== undefined) buffered.push(change)
          else apply(change)
        })
        const rows = yield* Effect.tryPromise({
          try: async () => {
            await client.connect()
            await client.query(`LISTEN ${channel}`)
            return (
              await client.query<{ key: string; generation: string }>("SELECT key, generation FROM cache_invalidations")
            ).rows
          },
          catch: (cause) => (cause instanceof Error ? cause : new Error(String(cause)))
        }).pipe(
          Effect.timeoutFail({
            duration: settings.statementTimeout,
            onTimeout: () => new Error("no answer while listening and reading the table")
          }),
          Effect.raceFirst(Deferred.await(closed))
        )
        known = new Map(rows.map((row) => [row.key, row.generation]))
        for (const change of buffered) apply(change)
        buffered = undefined
        listening = true
        Deferred.unsafeDone(loaded, Effect.void)
        if (reported) {
          reported = false
          yield* Effect.logInfo("cache invalidation listener reconnected").pipe(
            Effect.annotateLogs({ database: settings.label })
          )
        }
        // A partition that drops packets closes nothing: without a question now and then, this connection could look
        // alive for as long as TCP keeps retrying while it hears nothing. Unanswered, it is treated as lost.
        yield* Effect.tryPromise(() => client.query("SELECT 1")).pipe(
          Effect.timeoutFail({
            duration: settings.statementTimeout,
            onTimeout: () => new Error("no answer to the listener's heartbeat")
          }),
          Effect.delay(heartbeat),
          Effect.forever,
          Effect.catchAll((error) =>
            Effect.sync(() => lost(error instanceof Error ? error : new Error(String(error))))
          ),
          Effect.forkScoped
        )
        return yield* Deferred.await(closed)
      }).pipe(Effect.scoped)

      yield* session.pipe(
        Effect.tapError((error) =>
          reported
            ? Effect.void
            : Effect.logWarning("cache invalidation listener lost its database connection; reconnecting").pipe(
                Effect.annotateLogs({ database: settings.label, error: Postgres.describeError(settings, error) }),
                Effect.zipRight(Effect.sync(() => void (reported = true)))
              )
        ),
        Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.either(Schedule.spaced("2 seconds")))),
        Effect.forkScoped
      )
      // Nothing is served before the table was read once: a process that starts while an invalidation is pending
      // must bypass that entry from its first read. The database answered moments ago (Sql.ts), so this is quick;
      // should it not be, the process starts anyway and catches up when the listener connects.
      yield* Deferred.await(loaded).pipe(
        Effect.timeoutOption(settings.statementTimeout),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.void
            : Effect.logWarning("cache invalidation listener not connected yet; starting without it").pipe(
                Effect.annotateLogs({ database: settings.label })
              )
        )
      )

      // Registered before the statement is sent: the announcement may come back before its reply does.
      const echoed = <A, E>(generation: string, write: Effect.Effect<A, E>) =>
        Effect.suspend(() => {
          const echo = Deferred.unsafeMake<void>(FiberId.none)
          echoes.set(generation, echo)
          return write.pipe(
            Effect.zipLeft(
              Effect.suspend(() =>
                listening ? Effect.timeoutOption(Deferred.await(echo), Duration.millis(echoWaitMillis)) : Effect.void
              )
            ),
            Effect.ensuring(Effect.sync(() => echoes.delete(generation)))
          )
        })

      return Invalidations.of({
        pending: (key) => Effect.sync(() => known.get(key)),
        pendingAll: (keys) => Effect.sync(() => keys.map((key) => known.get(key))),
        record: (key) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const row = { key, generation: nextGeneration(), failed_at: new Date(now).toISOString() }
            const write = database.write(
              sql`INSERT INTO cache_invalidations ${sql.insert(row)}
                ON CONFLICT(key) DO UPDATE SET generation = excluded.generation, failed_at = excluded.failed_at`
            )
            // This process bypasses the entry at once, whatever its listener is doing.
            return echoed(
              row.generation,
              Effect.tap(write, () => Effect.sync(() => known.set(key, row.generation)))
            )
          }).pipe(
            Effect.asVoid,
            Effect.catchAll((error) => Effect.logError("could not record a pending cache invalidation", error))
          ),
        clear: (key, generation) =>
          sql`DELETE FROM cache_invalidations WHERE key = ${key} AND generation = ${generation}`.pipe(
            Effect.tap(() => Effect.sync(() => apply({ op: "clear", key, generation }))),
            Effect.asVoid,
            // Left in place, it is retried on a later read.
            Effect.catchAll(() => Effect.void)
          )
      })
    })
  ).pipe(Layer.provide(Database.Default))
