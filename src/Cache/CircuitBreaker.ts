import { Clock, Effect, Layer, Runtime } from "effect"
import { aroundEach, Cache, CacheError } from "../Cache.js"
import type { CacheOperation } from "../Cache.js"
import { cacheCircuitState, noLabels } from "../Metrics.js"

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number
  /** How long an open circuit refuses operations before one probe is let through. */
  readonly cooldownMillis: number
  /** The cooldown doubles after each failed probe, up to this. */
  readonly maxCooldownMillis: number
}

export const defaults: CircuitBreakerOptions = { failureThreshold: 5, cooldownMillis: 500, maxCooldownMillis: 2_000 }

export type State = "closed" | "open" | "half-open"

const gaugeValue: Record<State, number> = { closed: 0, "half-open": 1, open: 2 }

const circuitOpen = new Error("circuit open: cache recently unreachable")

/**
 * Stops sending traffic to a failing cache. A hung Redis costs every operation its full command timeout; once
 * `failureThreshold` operations in a row have failed, operations are refused at once (each still a CacheError, so
 * the service counts it and answers from the database) until a cooldown has passed and a single probe succeeds.
 */
export const make = (inner: Cache["Type"], options: CircuitBreakerOptions = defaults) => {
  let state: State = "closed"
  let failures = 0
  let cooldown = options.cooldownMillis
  let openUntil = 0
  let onTransition: (state: State) => void = () => {}

  const transition = (next: State) => {
    if (next === state) return
    state = next
    onTransition(next)
  }

  const succeeded = Effect.sync(() => {
    failures = 0
    cooldown = options.cooldownMillis
    transition("closed")
  })

  const failed = Effect.map(Clock.currentTimeMillis, (failedAt) => {
    failures++
    if (state === "half-open") cooldown = Math.min(cooldown * 2, options.maxCooldownMillis)
    if (state === "half-open" || failures >= options.failureThreshold) {
      openUntil = failedAt + cooldown
      transition("open")
    }
  })

  const guarded = <A>(op: CacheOperation, effect: Effect.Effect<A, CacheError>): Effect.Effect<A, CacheError> =>
    Effect.suspend(() => {
      // The closed circuit is the hot path: no clock read, and a success only resets a count that is not zero.
      if (state === "closed") {
        return failures === 0
          ? Effect.tapError(effect, () => failed)
          : Effect.tapBoth(effect, { onSuccess: () => succeeded, onFailure: () => failed })
      }
      return Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (state === "half-open" || now < openUntil) {
          return Effect.fail(new CacheError({ op, reason: "skipped", cause: circuitOpen }))
        }
        transition("half-open")
        return effect.pipe(
          Effect.tapBoth({ onSuccess: () => succeeded, onFailure: () => failed }),
          // A probe that is interrupted must not leave the circuit half-open forever.
          Effect.onInterrupt(() => Effect.sync(() => state === "half-open" && transition("open")))
        )
      })
    })

  const cache = aroundEach(inner, guarded)

  return {
    cache,
    state: () => state,
    onTransition: (listener: (state: State) => void) => void (onTransition = listener)
  }
}

/**
 * Puts a circuit breaker in front of whatever Cache layer it is applied to, with its state in `cache_circuit_state`.
 * Degradation (closed to open) and recovery (to closed) are logged once each; the probes in between, open to
 * half-open and back every cooldown while the cache stays away, only at debug level.
 */
export const layer = <E, R>(cacheLayer: Layer.Layer<Cache, E, R>, options: CircuitBreakerOptions = defaults) =>
  Layer.effect(
    Cache,
    Effect.gen(function* () {
      const breaker = make(yield* Cache, options)
      const log = Runtime.runFork(yield* Effect.runtime())
      let previous: State = "closed"
      cacheCircuitState.unsafeUpdate(gaugeValue.closed, noLabels)
      breaker.onTransition((state) => {
        cacheCircuitState.unsafeUpdate(gaugeValue[state], noLabels)
        const from = previous
        previous = state
        log(
          state === "open" && from === "closed"
            ? Effect.logWarning("cache circuit open: skipping the cache, serving from the database")
            : state === "closed"
              ? Effect.logInfo("cache circuit closed: the cache answers again")
              : Effect.logDebug(`cache circuit ${state}`)
        )
      })
      return breaker.cache
    })
  ).pipe(Layer.provide(cacheLayer))
