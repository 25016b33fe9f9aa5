// The batcher moved to src/TurnBatch.ts: it knows nothing of caches, and the repository uses it too. This re-export
// keeps Cache/Redis.ts building while that file is being reworked elsewhere; it goes once Redis.ts imports
// "../TurnBatch.js".
export * from "../TurnBatch.js"
