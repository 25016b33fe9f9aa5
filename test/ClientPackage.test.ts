import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import { promisify } from "node:util"
import { tempDir } from "./support/Databases.js"
import { App, memoryApp } from "./support/TestApp.js"

// The typed client as a user gets it (issue 25, item 4): the package packed by `npm pack` (its `prepack` builds
// dist/), unpacked into a consumer project of its own that imports `<name>/client` through package.json's `exports`,
// compiled by tsc in strict mode against the packed .d.ts files, and run against the real app. The consumer borrows
// the repository's node_modules for effect and @effect/* (symlinks), so nothing is downloaded.

const run = promisify(execFile)
const root = process.cwd()
const modules = Path.join(root, "node_modules")

const consumerSource = `import { FetchHttpClient } from "@effect/platform"
import { Effect } from "effect"
import * as Catalog from "effect-redis-cache-aside/client"

const program = Effect.gen(function* () {
  const catalog = yield* Catalog.make({ baseUrl: process.env.BASE_URL! })
  // Defaults left out (description, stock, category); ids as plain numbers.
  const created = yield* catalog.createProduct({ name: "Laptop", price: 999.99 })
  const miss = yield* catalog.getProduct(created.product.id)
  const hit = yield* catalog.getProduct(Number(String(created.product.id)))
  const page = yield* catalog.listProducts()
  const updated = yield* catalog.updateProduct(created.product.id, { stock: 3 })
  // Errors are typed: the contract's bodies by their \`error\` code, beside the client's own failures.
  const missing = yield* Effect.flip(catalog.getProduct(999_999))
  const code: string = "error" in missing ? missing.error : missing._tag
  // @ts-expect-error price is required
  catalog.createProduct({ name: "no price" })
  // @ts-expect-error an id is a number
  catalog.getProduct("1")
  console.log(JSON.stringify({
    product: { ...created.product, created_at: "", updated_at: "" },
    miss: miss.from_cache,
    hit: hit.from_cache,
    page: [page.total, page.offset, page.limit],
    stock: updated.product.stock,
    missing: code,
    health: (yield* catalog.getHealth()).status
  }))
})

Effect.runPromise(program.pipe(Effect.provide(FetchHttpClient.layer))).catch((error) => {
  console.error(error)
  process.exit(1)
})
`

const tsconfig = {
  compilerOptions: {
    target: "ES2022",
    module: "NodeNext",
    moduleResolution: "NodeNext",
    lib: ["ES2022", "DOM"],
    types: ["node"],
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: true,
    outDir: "out"
  },
  include: ["main.ts"]
}

/** A consumer project in `dir` with the packed package installed in its node_modules. */
const consumerOf = (dir: string, tarball: string) =>
  Effect.promise(async () => {
    const installed = Path.join(dir, "node_modules", "effect-redis-cache-aside")
    await Fs.mkdir(installed, { recursive: true })
    await run("tar", ["-xzf", tarball, "-C", installed, "--strip-components=1"])
    for (const name of ["effect", "@effect", "@types"]) {
      await Fs.symlink(Path.join(modules, name), Path.join(dir, "node_modules", name))
    }
    await Fs.writeFile(Path.join(dir, "package.json"), JSON.stringify({ name: "consumer", type: "module" }))
    await Fs.writeFile(Path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig))
    await Fs.writeFile(Path.join(dir, "main.ts"), consumerSource)
    return installed
  })

describe("the typed client, packed", () => {
  it.scopedLive(
    "npm pack, then a strict consumer compiles against its types and talks to the service",
    () =>
      Effect.gen(function* () {
        const app = yield* App
        const dir = yield* tempDir()
        const packed = yield* Effect.promise(() =>
          run("npm", ["pack", "--pack-destination", dir, "--json", "--silent"], { cwd: root, maxBuffer: 1 << 26 })
        )
        const [{ filename, files }] = JSON.parse(packed.stdout) as Array<{
          filename: string
          files: Array<{ path: string }>
        }>
        const paths = files.map((file) => file.path)
        expect(paths).toContain("dist/Client.d.ts")
        expect(paths).toContain("dist/Client.js")
        expect(paths.filter((path) => !path.startsWith("dist/")).sort()).toEqual(["README.md", "package.json"])

        const consumer = Path.join(dir, "consumer")
        const installed = yield* consumerOf(consumer, Path.join(dir, filename))
        const manifest = JSON.parse(
          yield* Effect.promise(() => Fs.readFile(Path.join(installed, "package.json"), "utf8"))
        )
        expect(manifest.exports["./client"]).toEqual({ types: "./dist/Client.d.ts", default: "./dist/Client.js" })

        const tsc = Path.join(modules, "typescript", "bin", "tsc")
        const compiled = yield* Effect.promise(() =>
          run(process.execPath, [tsc, "-p", consumer], { cwd: consumer }).catch((error) => error)
        )
        expect(`${compiled.stdout ?? ""}${compiled.stderr ?? ""}`, "tsc on the consumer").toBe("")

        const ran = yield* Effect.promise(() =>
          run(process.execPath, [Path.join(consumer, "out", "main.js")], {
            cwd: consumer,
            env: { ...process.env, BASE_URL: app.url }
          })
        )
        expect(JSON.parse(ran.stdout)).toEqual({
          product: {
            id: 1,
            name: "Laptop",
            description: "",
            price: 999.99,
            stock: 0,
            category: "",
            created_at: "",
            updated_at: ""
          },
          miss: false,
          hit: true,
          page: [1, 0, 20],
          stock: 3,
          missing: "not_found",
          health: "healthy"
        })
      }).pipe(Effect.provide(memoryApp())),
    { timeout: 240_000 }
  )
})
