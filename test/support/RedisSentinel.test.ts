import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import * as RedisSentinel from "./RedisSentinel.js"

// Each test builds its own five processes (about a second on two cores) and ends them with its scope.

const infoField = (info: unknown, field: string) => new RegExp(`^${field}:(.*)\\r?$`, "m").exec(String(info))?.[1]

describe("RedisSentinel", () => {
  it.scopedLive("the replica follows the master, and every Sentinel names the master at the relay", () =>
    Effect.gen(function* () {
      const harness = yield* RedisSentinel.make()
      expect(yield* harness.masterNamed).toEqual(harness.masterAddress)
      expect(harness.masterAddress.port).not.toBe(harness.master.port)
      yield* harness.master.command("SET", "k", "v")
      // WAIT on the writing connection: once it answers 1 the replica has the key.
      expect(yield* harness.master.commands(["SET", "k2", "v2"], ["WAIT", "1", "2000"])).toEqual(["OK", 1])
      expect(yield* harness.replica.command("GET", "k2")).toBe("v2")
      expect(yield* harness.replica.command("GET", "k")).toBe("v")
    })
  )

  it.scopedLive("severed, the replica misses the writes and WAIT on the writing connection answers 0", () =>
    Effect.gen(function* () {
      const harness = yield* RedisSentinel.make()
      expect(yield* harness.master.commands(["SET", "before", "1"], ["WAIT", "1", "200"])).toEqual(["OK", 1])
      yield* harness.severReplication
      expect(yield* harness.master.commands(["SET", "after", "1"], ["WAIT", "1", "200"])).toEqual(["OK", 0])
      // Both ends still see the link up: nothing tells them the stream is lost.
      expect(infoField(yield* harness.replica.command("INFO", "replication"), "master_link_status")).toBe("up")
      expect(infoField(yield* harness.master.command("INFO", "replication"), "connected_slaves")).toBe("1")
      expect(yield* harness.replica.command("GET", "after")).toBe(null)
      expect(yield* harness.replica.command("GET", "before")).toBe("1")
      // A client through the relay (where the Sentinels send clients) is answered as ever.
      expect(yield* harness.master.command("GET", "after")).toBe("1")
      yield* harness.restoreReplication
      expect(yield* harness.master.commands(["SET", "restored", "1"], ["WAIT", "1", "5000"])).toEqual(["OK", 1])
      expect(yield* harness.replica.command("GET", "after")).toBe("1")
    })
  )

  it.scopedLive(
    "a killed master's replica is promoted without the writes made after severing (a lost invalidation)",
    () =>
      Effect.gen(function* () {
        const harness = yield* RedisSentinel.make()
        const replidBefore = infoField(yield* harness.replica.command("INFO", "replication"), "master_replid")
        yield* harness.master.commands(["SET", "kept", "1"], ["WAIT", "1", "2000"])
        yield* harness.severReplication
        yield* harness.master.command("DEL", "kept")
        yield* harness.master.command("SET", "lost", "1")
        yield* harness.master.stop
        const promoted = yield* harness.awaitMaster((master) => master.port === harness.replica.port)
        expect(promoted).toEqual(harness.replicaAddress)
        const info = yield* harness.replica.command("INFO", "replication")
        expect(infoField(info, "role")).toBe("master")
        expect(infoField(info, "master_replid")).not.toBe(replidBefore)
        expect(yield* harness.replica.command("GET", "kept")).toBe("1")
        expect(yield* harness.replica.command("GET", "lost")).toBe(null)
      }),
    40_000
  )

  it.scopedLive(
    "SENTINEL FAILOVER promotes the replica and makes the old master its replica",
    () =>
      Effect.gen(function* () {
        const harness = yield* RedisSentinel.make()
        yield* harness.master.commands(["SET", "k", "v"], ["WAIT", "1", "2000"])
        yield* harness.failover
        yield* harness.awaitMaster((master) => master.port === harness.replica.port)
        expect(infoField(yield* harness.replica.command("INFO", "replication"), "role")).toBe("master")
        expect(yield* harness.replica.command("GET", "k")).toBe("v")
        // The Sentinels turn the old master into a replica of the new one (through the relay, as they know it), but only
        // once their next INFO to it (every 10 s) shows it still a master: until then it answers writes as one.
        // While it turns into a replica, Redis drops the connections of its clients: a poll that meets that asks again.
        yield* Effect.repeat(
          Effect.orElseSucceed(harness.master.command("INFO", "replication"), () => ""),
          {
            until: (info) => infoField(info, "role") === "slave" && infoField(info, "master_link_status") === "up",
            schedule: Schedule.spaced("100 millis")
          }
        ).pipe(Effect.timeout("15 seconds"))
      }),
    40_000
  )
})
