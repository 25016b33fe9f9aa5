import { Config, Either, Option, Redacted } from "effect"
import { invalid, parseUrl } from "./Parse.js"

/** A Redis node's address; an IPv6 host is kept without its brackets, as ioredis takes it. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** `host:port`, `[v6]:port`; the port 1-65535. */
const parseHostPort = (text: string): Option.Option<HostPort> => {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:\s/,\[\]]+):(\d{1,5})$/.exec(text)
  const port = match ? Number(match[2]) : 0
  return match && port >= 1 && port <= 65535
    ? Option.some({ host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port })
    : Option.none()
}

const redisAddr = Config.string("REDIS_ADDR").pipe(
  Config.withDefault("localhost:6379"),
  Config.mapOrFail((addr) =>
    Option.match(parseHostPort(addr), {
      onNone: () => Either.left(invalid("REDIS_ADDR", `must be host:port, got ${JSON.stringify(addr)}`)),
      onSome: ({ host, port }) => Either.right(`redis://${host.includes(":") ? `[${host}]` : host}:${port}`)
    })
  )
)

// The value may hold a password, so the error does not echo it.
const redisUrl = Config.redacted("REDIS_URL").pipe(
  Config.mapOrFail((secret) =>
    Option.isSome(parseUrl(Redacted.value(secret), ["redis:", "rediss:"]))
      ? Either.right(secret)
      : Either.left(invalid("REDIS_URL", "must be redis://[user:password@]host:port[/db] or rediss://..."))
  )
)

/** `REDIS_URL` wins over `REDIS_ADDR`; redacted because it may carry a password. */
export const redisConnection = Config.option(redisUrl).pipe(
  Config.zipWith(redisAddr, (url, addr) => Option.getOrElse(url, () => Redacted.make(addr)))
)

/** `host:port,host:port,...` (spaces around an element allowed); unset is none, an empty list or element is refused. */
const hostPortList = (name: string) =>
  Config.option(Config.string(name)).pipe(
    Config.mapOrFail((given) => {
      if (Option.isNone(given)) return Either.right(Option.none<ReadonlyArray<HostPort>>())
      const elements = given.value.split(",").map((element) => element.trim())
      const nodes = elements.flatMap((element) => Option.toArray(parseHostPort(element)))
      return nodes.length === elements.length
        ? Either.right(Option.some(nodes))
        : Either.left(
            invalid(name, `must be host:port,host:port,... (port 1-65535), got ${JSON.stringify(given.value)}`)
          )
    })
  )

/** Where Redis runs: one node at `REDIS_ADDR`/`REDIS_URL`, a master the Sentinels name, or a Cluster's masters. */
export type RedisTopology =
  | { readonly _tag: "Single" }
  | { readonly _tag: "Sentinel"; readonly sentinels: ReadonlyArray<HostPort>; readonly name: string }
  | { readonly _tag: "Cluster"; readonly nodes: ReadonlyArray<HostPort> }

/**
 * `REDIS_SENTINELS` (with `REDIS_SENTINEL_NAME`) or `REDIS_CLUSTER_NODES`, never both: they win over the host of
 * `REDIS_ADDR`/`REDIS_URL`, whose password and TLS still apply. The name is checked even when unused, so a typo
 * shows at once rather than on the day Sentinels are set.
 */
export const redisTopology: Config.Config<RedisTopology> = Config.all([
  hostPortList("REDIS_SENTINELS"),
  Config.string("REDIS_SENTINEL_NAME").pipe(
    Config.validate({ message: "must not be empty or contain spaces", validation: (n) => /^\S+$/.test(n) }),
    Config.withDefault("mymaster")
  ),
  hostPortList("REDIS_CLUSTER_NODES")
]).pipe(
  Config.mapOrFail(([sentinels, name, nodes]) =>
    Option.isSome(sentinels) && Option.isSome(nodes)
      ? Either.left(invalid("REDIS_CLUSTER_NODES", "must not be set together with REDIS_SENTINELS"))
      : Either.right<RedisTopology>(
          Option.isSome(sentinels)
            ? { _tag: "Sentinel", sentinels: sentinels.value, name }
            : Option.isSome(nodes)
              ? { _tag: "Cluster", nodes: nodes.value }
              : { _tag: "Single" }
        )
  )
)
