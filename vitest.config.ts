import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration suites start their own redis-server processes; two cores do not gain from more parallel files.
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 20_000
  }
})
