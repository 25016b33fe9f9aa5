import type { ServerResponse } from "node:http"

/**
 * Makes `response.end(callback)` call back also when the connection closes before the answer is flushed.
 *
 * Node calls an `end` callback on `finish` only, and a response whose client hung up (a half-close, say) never
 * finishes. The platform's handler waits for that callback in a region it cannot interrupt, so each such request
 * left its fiber behind for good: hundreds per thousand hang-ups, measured (test/integration/HangUps.test.ts). The
 * upstream handler has the same wait (Effect-TS/effect#6506 fixed it for HEAD only).
 */
export const settleEndOnClose = (response: ServerResponse): ServerResponse => {
  const end = response.end
  response.end = function (this: ServerResponse, ...args: Array<unknown>) {
    const callback = args.find((arg): arg is () => void => typeof arg === "function")
    if (callback !== undefined) {
      // After `finish`, Node has already called it.
      const settle = () => response.writableFinished || callback()
      if (response.destroyed) process.nextTick(settle)
      else response.once("close", settle)
    }
    return end.apply(this, args as Parameters<ServerResponse["end"]>)
  } as ServerResponse["end"]
  return response
}
