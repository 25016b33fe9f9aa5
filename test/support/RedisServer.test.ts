import * as Fs from "node:fs/promises"
import { describe, expect, it, layer } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Scope } from "effect"
import * as RedisServer from "./RedisServer.js"

const pidOf = (server: RedisServer.RedisServer) =>
  server.command("INFO", "server").pipe(Effect.map((info) => Number(/process_id:(\d+)/.exec(String(info))?.[1])))

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const exists = (path: string) =>
  Effect.promise(() =>
    Fs.stat(path).then(
      () => true,
      () => false
    )
  )

describe("RedisServer", () => {
  it.scoped("answers PING and SET/GET on its own port", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      expect(server.port).not.toBe(6379)
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
      expect(yield* server.command("PING")).toBe("PONG")
      expect(yield* server.command("SET", "k", "v")).toBe("OK")
      expect(yield* server.command("GET", "k")).toBe("v")
    })
  )

  it.scoped("stop refuses connections, start answers again on the same port", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      yield* server.command("SET", "k", "v")
      yield* server.stop
      const refused = yield* Effect.exit(server.command("PING"))
      expect(Exit.isFailure(refused)).toBe(true)
      yield* server.start
      expect(yield* server.command("PING")).toBe("PONG")
      // Without an append-only file a restart is a cold cache.
      expect(yield* server.command("GET", "k")).toBe(null)
    })
  )

  it.scoped("with appendOnly a key survives stop/start", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make({ appendOnly: true })
      yield* server.command("SET", "k", "v")
      yield* server.stop
      yield* server.start
      expect(yield* server.command("GET", "k")).toBe("v")
    })
  )

  // Live clock: the timeouts below measure wall-clock time against a process that is really stopped.
  it.scopedLive("freeze makes commands hang until thaw", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      yield* server.freeze
      const hung = yield* Effect.exit(server.command("PING").pipe(Effect.timeout("300 millis")))
      expect(Exit.isFailure(hung) && Cause.isTimeoutException(Cause.squash(hung.cause))).toBe(true)
      yield* server.thaw
      expect(yield* server.command("PING").pipe(Effect.timeout("2 seconds"))).toBe("PONG")
    })
  )

  it.scopedLive("pause holds commands from other connections until it ends", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.make()
      // Timed from before the pause is sent: however slow the machine, the reply cannot come before the pause ends.
      const [elapsed, reply] = yield* Effect.timed(Effect.zipRight(server.pause(300), server.command("PING")))
      expect(reply).toBe("PONG")
      // 1 ms for Redis's whole-millisecond clock.
      expect(Duration.toMillis(elapsed)).toBeGreaterThanOrEqual(299)
    })
  )

  it.effect("closing the scope kills the process, even a frozen one, and removes the dir", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const server = yield* RedisServer.make().pipe(Scope.extend(scope))
      const pid = yield* pidOf(server)
      expect(isAlive(pid)).toBe(true)
      expect(yield* exists(server.dir)).toBe(true)
      yield* server.freeze
      yield* Scope.close(scope, Exit.void)
      expect(() => process.kill(pid, 0)).toThrow()
      expect(yield* exists(server.dir)).toBe(false)
    })
  )
})

layer(RedisServer.TestRedis.layer)("TestRedis.layer", (it) => {
  it.effect("provides a running server", () =>
    Effect.gen(function* () {
      const server = yield* RedisServer.TestRedis
      expect(yield* server.command("PING")).toBe("PONG")
    })
  )
})
