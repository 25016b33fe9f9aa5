import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import { Effect, FiberRef, Function, Layer, Option } from "effect"
import * as AppConfig from "./AppConfig.js"

/**
 * Tracing off: spans become no-ops, the cache wrapper makes none (Cache/Observed.ts), and the platform skips its
 * per-request `http.server` span, which otherwise parses the URL and copies headers on every request.
 */
const off = Layer.mergeAll(
  Layer.setTracerEnabled(false),
  Layer.locallyScoped(HttpMiddleware.currentTracerDisabledWhen, Function.constTrue)
)

// Loaded only when tracing is on, so a service without a collector never loads the OpenTelemetry SDK.
const otlp = (endpoint: string, serviceName: string) =>
  Layer.unwrapEffect(
    Effect.promise(async () => {
      const [NodeSdk, { OTLPTraceExporter }, { BatchSpanProcessor }] = await Promise.all([
        import("@effect/opentelemetry/NodeSdk"),
        import("@opentelemetry/exporter-trace-otlp-http"),
        import("@opentelemetry/sdk-trace-base")
      ])
      return NodeSdk.layer(() => ({
        resource: { serviceName },
        spanProcessor: new BatchSpanProcessor(
          new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` })
        ),
        // Flushing at shutdown must not hold the exit hostage to an unreachable collector.
        shutdownTimeout: "1 second"
      }))
    })
  )

/** Spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise no tracing work at all. */
export const layer = Layer.unwrapEffect(
  Effect.map(Effect.all([AppConfig.otlpEndpoint, AppConfig.serviceName]), ([endpoint, serviceName]) =>
    Option.match(endpoint, { onNone: () => off, onSome: (url) => otlp(url, serviceName) })
  )
)

/**
 * `Effect.withSpan` when tracing is on where a service is built, else nothing: even a no-op span costs a fiber-runtime
 * read, an exit hook and a context change per call. Stack traces are never captured: capturing them was a large share
 * of a cache hit's CPU.
 */
export const spans = Effect.map(
  FiberRef.get(FiberRef.currentTracerEnabled),
  (enabled) =>
    (name: string, attributes?: Record<string, unknown>) =>
    <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      enabled ? Effect.withSpan(effect, name, { attributes, captureStackTrace: false }) : effect
)
