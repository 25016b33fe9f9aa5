import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Clock, Effect } from "effect"
import type * as ReadAnswers from "./ReadAnswers.js"

// Answers are JSON text written here rather than encoded by the success schemas, for the reasons ReadAnswers.ts
// gives; the schemas in Api.ts still describe them for OpenAPI.

export const json = (body: string, status = 200, headers?: Record<string, string>) =>
  HttpServerResponse.text(
    body,
    headers === undefined
      ? { status, contentType: "application/json" }
      : {
          status,
          contentType: "application/json",
          headers
        }
  )

export const readResponse = (answer: ReadAnswers.ReadAnswer) =>
  json(
    answer.body,
    answer.status,
    answer.xCache === undefined
      ? undefined
      : answer.age === undefined
        ? { "x-cache": answer.xCache }
        : { "x-cache": answer.xCache, age: String(answer.age) }
  )

export const timestamp = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis).toISOString())
