import { expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import { call, sleep } from "./ServiceProcess.js"
import type { ServiceProcess } from "./ServiceProcess.js"

// What the suites of the service as a real process share (test/integration/Process*.test.ts).

export const keepAliveAgent = Effect.acquireRelease(
  Effect.sync(() => new Http.Agent({ keepAlive: true, maxSockets: 1 })),
  (agent) => Effect.sync(() => agent.destroy())
)

export const product = { name: "Laptop", description: "High-performance laptop", price: 999.99, stock: 50 }

export const create = (service: ServiceProcess, agent?: Http.Agent) =>
  Effect.tap(call(service.port, "POST", "/api/v1/products", { json: product, ...(agent ? { agent } : {}) }), (reply) =>
    expect(reply.status, reply.text).toBe(201)
  )

/** Polls until `check` holds; dies with the last value otherwise. */
export const eventually = <A>(get: () => Promise<A>, check: (a: A) => boolean, timeoutMs: number) =>
  Effect.promise(async () => {
    const deadline = performance.now() + timeoutMs
    let last = await get()
    while (!check(last)) {
      if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms; last: ${JSON.stringify(last)}`)
      await sleep(100)
      last = await get()
    }
    return last
  }).pipe(Effect.orDie)

export const statusLines = (text: string) => text.match(/HTTP\/1\.1 \d{3} [^\r]*/g) ?? []

/**
 * What "promptly" means for a shutdown: an exit that waited for something (a connection's keep-alive timeout, 5 s in
 * Node; the drain's grace for in-flight requests) would take longer. Generous on purpose: other processes start
 * beside these on two cores.
 */
export const promptExitMillis = 5_000
