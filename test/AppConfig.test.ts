import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { availableParallelism } from "node:os"
import * as AppConfig from "../src/AppConfig.js"

const workersFrom = (value: string) =>
  Effect.either(AppConfig.workers).pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["WORKERS", value]])))
  )

describe("WORKERS", () => {
  it.effect("auto is one worker per core the process may use; N is N", () =>
    Effect.gen(function* () {
      expect(yield* workersFrom("auto")).toEqual(Either.right(availableParallelism()))
      expect(yield* workersFrom("3")).toEqual(Either.right(3))
      expect(yield* workersFrom("64")).toEqual(Either.right(64))
    })
  )

  it.effect("anything else is refused, naming the variable", () =>
    Effect.gen(function* () {
      for (const value of ["0", "65", "-1", "two", "1.5", "", "Auto "]) {
        const result = yield* workersFrom(value)
        expect(Either.isLeft(result), value).toBe(true)
        if (Either.isLeft(result)) expect(String(result.left), value).toMatch(/WORKERS/)
      }
    })
  )
})
