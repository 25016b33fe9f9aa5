import { Layer } from "effect"
import { RoutesLive } from "./Http/Routes.js"
import { ServeLive } from "./Http/Server.js"

/**
 * The HTTP side of the service. Every request reaches one Node `request` listener (Http/Server.ts): the lean path
 * (Http/LeanPath.ts) answers the canonical cached GETs, the HttpApi app (Http/Routes.ts) everything else, both with
 * the same answers (Http/ReadAnswers.ts). It needs a server (`Server.nodeServer`) and the services, which main.ts or
 * a test provides.
 */
export const HttpLive = ServeLive.pipe(Layer.provide(RoutesLive))
