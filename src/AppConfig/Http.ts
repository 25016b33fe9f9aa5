import { Config, Duration, Either, Option } from "effect"
import { isIP } from "node:net"
import { goDuration, invalid, parseDuration } from "./Parse.js"

/** Listening port (`HTTP_PORT`). */
export const httpPort = Config.port("HTTP_PORT").pipe(Config.withDefault(3000))

// A host name as DNS spells it: dot-separated labels of letters, digits and inner hyphens.
const hostName = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i

/**
 * The listening address (`HOST`): unset or empty, every interface, IPv6 and IPv4 alike, as before — what a container
 * needs for its published port; `127.0.0.1` keeps the service to this machine.
 */
export const host = Config.option(Config.string("HOST")).pipe(
  Config.mapOrFail((given) => {
    const text = Option.getOrElse(given, () => "").trim()
    if (text === "") return Either.right(undefined)
    return isIP(text) !== 0 || hostName.test(text)
      ? Either.right(text)
      : Either.left(
          invalid(
            "HOST",
            `must be an IP address or a host name such as 127.0.0.1, ::1 or localhost, got ${JSON.stringify(text)}`
          )
        )
  })
)

/** The longest a client may take to send a whole request (`REQUEST_TIMEOUT`); a slower one is answered 408. */
export const requestTimeout = goDuration("REQUEST_TIMEOUT", "30s")

/**
 * With the longest it may take to send the headers (`HEADERS_TIMEOUT`): 10 s by default, or `REQUEST_TIMEOUT` if that
 * is shorter, so setting only the one never contradicts the other; a value set longer than `REQUEST_TIMEOUT` is
 * refused, as Node would refuse it.
 */
export const clientTimeouts = Config.all({
  requestTimeout,
  // Parsed on its own, so a bad value is reported also when REQUEST_TIMEOUT is bad too.
  headersTimeout: Config.string("HEADERS_TIMEOUT").pipe(
    Config.withDefault(""),
    Config.mapOrFail((text) =>
      text === "" ? Either.right(Option.none()) : Either.map(parseDuration("HEADERS_TIMEOUT", text), Option.some)
    )
  )
}).pipe(
  Config.mapOrFail(({ headersTimeout: given, requestTimeout }) =>
    Option.match(given, {
      onNone: () =>
        Either.right({ requestTimeout, headersTimeout: Duration.min(Duration.seconds(10), requestTimeout) }),
      onSome: (headersTimeout) =>
        Duration.lessThanOrEqualTo(headersTimeout, requestTimeout)
          ? Either.right({ requestTimeout, headersTimeout })
          : Either.left(
              invalid("HEADERS_TIMEOUT", `must not be longer than REQUEST_TIMEOUT (${Duration.format(requestTimeout)})`)
            )
    })
  )
)

/**
 * Open connections per process (`MAX_CONNECTIONS`); one more is closed as it arrives. 10,000 is far above what one
 * process serves usefully (a load balancer or the bench keeps tens to hundreds open) and far below the file
 * descriptors and memory that a flood of idle connections would otherwise take.
 */
export const maxConnections = Config.integer("MAX_CONNECTIONS").pipe(
  Config.validate({ message: "must be a whole number of at least 1", validation: (n) => n >= 1 }),
  Config.withDefault(10_000)
)

/**
 * Open dashboard feeds per process (`DASHBOARD_MAX_FEEDS`); one more is answered 503 with `Retry-After`. The feed
 * computes one event a tick whatever the number of feeds, but each one still takes a connection and a write a second.
 */
export const dashboardMaxFeeds = Config.integer("DASHBOARD_MAX_FEEDS").pipe(
  Config.validate({ message: "must be a whole number of at least 1", validation: (n) => n >= 1 }),
  Config.withDefault(100)
)

/** Everything the Node server is built with. */
export const httpServer = Config.all([httpPort, host, clientTimeouts, maxConnections]).pipe(
  Config.map(([port, host, timeouts, maxConnections]) => ({ port, host, ...timeouts, maxConnections }))
)
