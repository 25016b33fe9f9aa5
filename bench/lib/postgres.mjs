// The PostgreSQL the service's "pg" instances run on: the machine's (BENCH_POSTGRES_URL, by default
// postgres://postgres@127.0.0.1:5432, trust authentication), one randomly named database per instance, dropped at
// the end of the run. Nothing else on the server is touched.
import pg from "pg"

export const serverUrl = process.env.BENCH_POSTGRES_URL || "postgres://postgres@127.0.0.1:5432"

const created = []

const admin = async (statement) => {
  const client = new pg.Client({ connectionString: `${serverUrl}/postgres`, connectionTimeoutMillis: 3_000 })
  client.on("error", () => {})
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** A new empty database; its URL. */
export const createDatabase = async (label) => {
  const name = `bench_${label}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  await admin(`CREATE DATABASE ${name}`)
  created.push(name)
  return `${serverUrl}/${name}`
}

/** Drops every database this run created (after its servers stopped; FORCE ends whatever is still connected). */
export const dropDatabases = async () => {
  for (const name of created.splice(0)) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {})
}
