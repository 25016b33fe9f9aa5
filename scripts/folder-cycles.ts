// Checks that no top-level concept of src/ needs one that needs it back: a cycle madge's file check cannot see,
// since it runs through different files (Cache/Live.ts -> Database/CacheEpochs.ts -> Cache/Epoch.ts). A concept is a
// root file with the folder of the same name (Cache.ts and Cache/ are "Cache"). Reads `madge --json` of src on stdin
// (.ci/run pipes it in); exits 1 naming each cycle and the imports that make it.
import { readFileSync } from "node:fs"

/**
 * Imports that close a known cycle, each with what removes it: a fixed one must be struck off here (the check fails
 * while a listed import no longer exists), so that the allowance cannot outlive the cycle. None today.
 */
const known: ReadonlyArray<readonly [from: string, to: string]> = []

const conceptOf = (file: string) => file.split("/")[0]!.replace(/(\.d)?\.ts$/, "")

const files: Record<string, ReadonlyArray<string>> = JSON.parse(readFileSync(0, "utf8"))
const isKnown = (from: string, to: string) => known.some(([a, b]) => a === from && b === to)

// Concept -> concept, with the file imports behind each arrow.
const edges = new Map<string, Map<string, Array<string>>>()
for (const [from, imports] of Object.entries(files)) {
  for (const to of imports) {
    const [a, b] = [conceptOf(from), conceptOf(to)]
    if (a === b || isKnown(from, to)) continue
    const targets = edges.get(a) ?? new Map<string, Array<string>>()
    edges.set(a, targets.set(b, [...(targets.get(b) ?? []), `${from} -> ${to}`]))
  }
}

// Tarjan's strongly connected components: every component of more than one concept is a cycle.
const concepts = [...new Set(Object.keys(files).map(conceptOf))].sort()
const index = new Map<string, number>()
const low = new Map<string, number>()
const stack: Array<string> = []
const cycles: Array<ReadonlyArray<string>> = []
const visit = (concept: string) => {
  index.set(concept, index.size)
  low.set(concept, index.get(concept)!)
  stack.push(concept)
  for (const next of edges.get(concept)?.keys() ?? []) {
    if (!index.has(next)) {
      visit(next)
      low.set(concept, Math.min(low.get(concept)!, low.get(next)!))
    } else if (stack.includes(next)) {
      low.set(concept, Math.min(low.get(concept)!, index.get(next)!))
    }
  }
  if (low.get(concept) === index.get(concept)) {
    const component: Array<string> = []
    let member: string
    do {
      member = stack.pop()!
      component.push(member)
    } while (member !== concept)
    if (component.length > 1) cycles.push(component.sort())
  }
}
for (const concept of concepts) if (!index.has(concept)) visit(concept)

const stale = known.filter(([from, to]) => !(files[from] ?? []).includes(to))
for (const [from, to] of stale) {
  console.error(`known folder-cycle import ${from} -> ${to} is gone: strike it off scripts/folder-cycles.ts`)
}
for (const cycle of cycles) {
  console.error(`folder cycle: ${cycle.join(", ")}`)
  for (const from of cycle) {
    for (const [to, imports] of edges.get(from) ?? []) {
      if (cycle.includes(to)) for (const line of imports) console.error(`  ${line}`)
    }
  }
}
if (cycles.length > 0 || stale.length > 0) process.exit(1)
console.log(`no folder cycle among ${concepts.length} concepts of src/ (${known.length} known imports allowed)`)
