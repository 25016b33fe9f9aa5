import { Layer } from "effect"
import { RoutesLive } from "./Http/Routes.js"
import { ServeLive } from "./Http/Server.js"

/**
 * The HTTP side of the service. Every request reaches one Node `request` listener (Http/Server.ts): the fast path
 * (Http/FastPath.ts, its routes read off the HttpApi by Http/RouteTable.ts) answers the catalog's operations spelled
 * canonically, the HttpApi app (Http/Routes.ts) everything else, both with the same answers (Http/ReadAnswers.ts,
 * Http/WriteAnswers.ts). It needs a server (`Server.nodeServer`), the services and the dashboard (`Dashboard.Live`: the
 * "dashboard" group's handlers and its page), which main.ts or a test provides.
 */
export const HttpLive = ServeLive.pipe(Layer.provide(RoutesLive))
