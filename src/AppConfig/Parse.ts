import { Config, ConfigError, Duration, Either, Option } from "effect"
import * as GoDuration from "./GoDuration.js"

// The checks more than one variable shares. A check goes before its default: placed after `Config.withDefault`, its
// error loses the variable's name.

export const invalid = (name: string, message: string) => ConfigError.InvalidData([name], message)

/** A Go-style duration of at least 1ms, or the error naming `name`; `text` is the variable's value. */
export const parseDuration = (name: string, text: string): Either.Either<Duration.Duration, ConfigError.ConfigError> =>
  Option.match(GoDuration.parse(text), {
    onNone: () =>
      Either.left(invalid(name, `must be a duration such as 300ms, 30s, 5m or 1h30m, got ${JSON.stringify(text)}`)),
    onSome: (duration) =>
      Duration.toMillis(duration) >= 1
        ? Either.right(duration)
        : Either.left(invalid(name, `must be at least 1ms, got ${JSON.stringify(text)}`))
  })

/** A check after a default or across variables: `Config.validate` would report it at no path ("Invalid data at :"). */
export const validateNamed = <A>(name: string, message: string, validation: (value: A) => boolean) =>
  Config.mapOrFail((value: A) => (validation(value) ? Either.right(value) : Either.left(invalid(name, message))))

/** The variable `name` as a Go-style duration, `fallback` when unset. */
export const goDuration = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((text) => parseDuration(name, text))
  )

/** A duration variable with an upper bound, `most` as the error says it (`1m`). */
export const boundedDuration = (
  name: string,
  fallback: string,
  most: { readonly millis: number; readonly text: string }
) =>
  goDuration(name, fallback).pipe(
    validateNamed(
      name,
      `must be at most ${most.text}`,
      (duration: Duration.Duration) => Duration.toMillis(duration) <= most.millis
    )
  )

/**
 * `text` as a URL of one of `protocols` (`"redis:"`) naming a host, and passing `accept` if given, or none. The caller
 * words the error: a URL that may carry a password is never echoed in it.
 */
export const parseUrl = (
  text: string,
  protocols: ReadonlyArray<string>,
  accept: (url: URL) => boolean = () => true
): Option.Option<URL> => {
  try {
    const url = new URL(text)
    return protocols.includes(url.protocol) && url.hostname !== "" && accept(url) ? Option.some(url) : Option.none()
  } catch {
    // not a URL, or `accept` threw on it (a malformed %-escape)
    return Option.none()
  }
}
