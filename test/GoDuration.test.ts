import { describe, expect, it } from "@effect/vitest"
import { Duration, Option } from "effect"
import * as GoDuration from "../src/AppConfig/GoDuration.js"

const millis = (text: string) => Option.map(GoDuration.parse(text), Duration.toMillis)

describe("GoDuration", () => {
  it("reads Go's duration syntax", () => {
    expect(millis("300ms")).toEqual(Option.some(300))
    expect(millis("30s")).toEqual(Option.some(30_000))
    expect(millis("5m")).toEqual(Option.some(300_000))
    expect(millis("1h30m")).toEqual(Option.some(5_400_000))
    expect(millis("1.5h")).toEqual(Option.some(5_400_000))
    expect(millis("2m3.5s")).toEqual(Option.some(123_500))
    expect(millis("1500us")).toEqual(Option.some(1.5))
    expect(millis("0")).toEqual(Option.some(0))
  })

  it("refuses what Go refuses, and negative durations", () => {
    for (const text of ["", "5", "5 minutes", "5M", "m", "1h-30m", "-5m", "1e3s", "5m30", "abc"]) {
      expect(GoDuration.parse(text), text).toEqual(Option.none())
    }
  })
})
