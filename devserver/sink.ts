// The counting sink: answers the project's Convex functions as a deployment would for a workspace that is empty
// and accepts every write, doing no database work, and counts calls and bytes. Benchmarks run the sync against it
// to see the pipeline's own speed (and its number of calls and bytes), apart from any database.
import type { Value } from "convex/values";

/** Calls and bytes the server has seen, and how many writes it refused for throughput (HTTP 429). */
export type SinkStats = { calls: Record<string, number>; bytes_in: number; bytes_out: number; throttled: number };

export function newStats(): SinkStats {
  return { calls: {}, bytes_in: 0, bytes_out: 0, throttled: 0 };
}

/** The reply of `structures:<name>`, `executions:<name>` or `optimade:<name>` to `args`, as a deployment holding nothing yet would give it. */
export function sinkReply(name: string, args: any): Value {
  switch (name) {
    case "putBatch":
      return args.records.map((record: any) => ({
        structure_id: record.structure_id,
        status: "created",
        chunk_count: record.parts.find((part: any) => part.name === "raw")?.chunk_count ?? 0,
        garbage: false,
      }));
    case "stageChunks":
      return { received: args.chunks.length, committed: false };
    case "getInstance":
      return "counting-sink";
    case "ensureInstance":
      return "counting-sink";
    case "contentHashes":
      return [];
    case "getStructure":
      return null;
    case "readChunks":
      return { chunks: [], next_index: null };
    case "listStructures":
      return { page: [], isDone: true, continueCursor: "" };
    case "queryStructures":
      return { page: [], continueCursor: "", isDone: true, rowsRead: 0 };
    case "syncStructureElements":
      return { checked: 0, written: 0, isDone: true, continueCursor: "" };
    case "removeStructure":
      return { existed: false, garbage: false };
    case "collectGarbage":
      return { deleted: 0, done: true };
    case "putExecutions":
      return args.records.map((record: any) => ({ process_uuid: record.process_uuid, status: "created" }));
    case "getExecution":
      return null;
    case "listExecutions":
    case "listExecutionsOfStructure":
      return { page: [], isDone: true, continueCursor: "" };
    case "executionHashes":
      return [];
    case "removeExecution":
      return { existed: false };
    case "storageStats":
      return { count: 0, committed_chunks: 0, chunk_sets: [], isDone: true, continueCursor: "" };
    default:
      throw new Error(`the counting sink does not know the function ${name}`);
  }
}
