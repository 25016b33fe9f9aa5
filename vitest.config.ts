import { defineConfig } from "vitest/config"

// The suites that touch the database run twice: on SQLite (with everything else) and on PostgreSQL, each test on a
// database of its own (test/support/Databases.ts: a temp file, or a randomly named database on 127.0.0.1:5432).
const onBothDatabases = [
  "test/ProductRepo.test.ts",
  "test/ProductServiceStored.test.ts",
  "test/HttpProducts.test.ts",
  "test/HttpErrors.test.ts",
  "test/HttpBadInput.test.ts",
  "test/HttpCache.test.ts",
  "test/FastPathReads.test.ts",
  "test/FastPathWrites.test.ts",
  "test/integration/TwoInstances.test.ts",
  "test/integration/RedisRestore.test.ts",
  "test/integration/TwoProcesses.test.ts"
]
// What only PostgreSQL has: several hosts' start-up, a network between the service and its database.
const onPostgresOnly = ["test/integration/PostgresProcess.test.ts"]

export default defineConfig({
  test: {
    // Integration suites start their own redis-server processes; two cores do not gain from more parallel files.
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 20_000,
    projects: [
      {
        extends: true,
        test: {
          name: "sqlite",
          include: ["test/**/*.test.ts"],
          exclude: onPostgresOnly,
          env: { TEST_DATABASE: "sqlite" }
        }
      },
      {
        extends: true,
        test: { name: "postgres", include: [...onBothDatabases, ...onPostgresOnly], env: { TEST_DATABASE: "postgres" } }
      }
    ]
  }
})
