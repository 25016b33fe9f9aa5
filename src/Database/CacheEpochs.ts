import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { CacheEpoch, newEpoch, withHistory } from "../Cache/Epoch.js"
import { Database } from "../Database.js"
import { SqlLive } from "./Sql.js"

interface Row {
  readonly epoch: string
  readonly histories: string
}

/**
 * The epoch kept in the database every instance shares, so that the first instance to meet a Redis history starts
 * the new epoch for all of them, and the others, meeting the same history, join it instead of starting another.
 * Replacing the row is a compare-and-set on the epoch read: of two instances that meet a new history at once, one
 * wins and the other reads the winner's row again, where it finds its history.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const database = yield* Database

  const current = database.read(sql<Row>`SELECT epoch, histories FROM cache_epoch WHERE id = 1`)
  const create = (identity: string) =>
    database.write(
      sql<Row>`INSERT INTO cache_epoch (id, epoch, histories) VALUES (1, ${newEpoch()}, ${JSON.stringify([identity])})
      ON CONFLICT (id) DO NOTHING RETURNING epoch, histories`
    )
  const replace = (seen: Row, identity: string) =>
    database.write(
      sql<Row>`UPDATE cache_epoch SET epoch = ${newEpoch()},
        histories = ${JSON.stringify(withHistory(JSON.parse(seen.histories) as Array<string>, identity))}
      WHERE id = 1 AND epoch = ${seen.epoch} RETURNING epoch, histories`
    )

  const trust = (identity: string): Effect.Effect<string, unknown> =>
    Effect.flatMap(current, ([row]) => {
      if (row !== undefined && (JSON.parse(row.histories) as Array<string>).includes(identity)) {
        return Effect.succeed(row.epoch)
      }
      return Effect.flatMap(row === undefined ? create(identity) : replace(row, identity), ([won]) =>
        won !== undefined ? Effect.succeed(won.epoch) : trust(identity)
      )
    })

  return CacheEpoch.of({ trust })
})

/** The shared record, on the client `DATABASE_URL` (or `DB_PATH`) names. */
export const layer = Layer.effect(CacheEpoch, make).pipe(Layer.provide([SqlLive, Database.Default]))
