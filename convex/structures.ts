// Convex functions of the aiida-structstore projection.
//
// Every function is built by layout.ts (the component's API, public only to the app that mounts it; internal, with
// the deploy key, in a standalone copy: never callable by a browser), takes tenant and workspace and uses both in
// every index range, validates its arguments beyond the validators (id character set, chunk indices, counts), and
// throws `ConvexError({code, message})` for expected failures; the Python backend maps
// the codes to its own error classes. docs/convex-projection.md describes the commit protocol.
import { ConvexError, v } from "convex/values";
import { paginationOptsValidator } from "convex/server";
import type { Doc } from "./_generated/dataModel";
import type { MutationCtx, QueryCtx } from "./_generated/server";
import { storeMutation, storeQuery } from "./layout";
import { partName, structureFields } from "./schema";
import limits from "./limits.json";

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const GENERATION_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
// A chunk's text may be at most this many UTF-8 bytes (the Python side uses 512 KiB). The limits shared with the
// client and the local server are in limits.json.
export const MAX_CHUNK_BYTES = limits.protocol.maxChunkBytes;
const MAX_CHUNKS_PER_PART = limits.protocol.maxChunksPerPart;
// The inline payloads (CIF, structure JSON, parameters) of a record may be at most this many bytes together, so a
// record document stays small and a page of them fits a query's read limit.
export const MAX_INLINE_BYTES = limits.protocol.maxInlineBytes;
// Convex allows a query or mutation to read 16 MiB and 32,000 documents and to write 16 MiB and 16,000 documents.
// Every function here stays within half of that: loops that read or delete an unbounded number of documents stop
// early (and say where to go on), and bounded ones are checked against these numbers by their argument limits.
export const READ_BUDGET_BYTES = limits.convex.transactionReadBytes / 2;
const DOCUMENT_BUDGET = limits.convex.transactionWriteDocuments / 2;
// Old chunks of a replaced record are deleted in the same mutation up to this many bytes in total; beyond it
// they become a `garbage` chunk set for collectGarbage. Deleting a document reads it once more.
const INLINE_DELETE_BYTES = 2 * 1024 * 1024;
// readChunks returns at most about this many bytes per call unless asked for less.
const DEFAULT_PAGE_BYTES = 8 * 1024 * 1024;
// collectGarbage deletes at most about this many bytes of chunks per call (each is read, then deleted).
const GC_PAGE_BYTES = 3 * 1024 * 1024;
// collectGarbage looks at this many chunk sets per call.
const SETS_PER_CALL = 64;
// contentHashes answers for at most this many ids per call (each reads one record document).
const MAX_HASH_IDS = limits.protocol.maxHashIds;
const MAX_GET_STRUCTURES = limits.protocol.maxGetStructures;

// The element rows (structure_elements) one putBatch call may have to write for its records' summaries: the
// distinct elements of every record together (the client sizes its batches to it).
export const MAX_BATCH_ELEMENTS = limits.protocol.maxBatchElements;

type Code = "INVALID_ARGUMENT" | "NOT_FOUND" | "CONFLICT" | "INCOMPLETE_UPLOAD" | "LIMIT_EXCEEDED";

export function fail(code: Code, message: string): never {
  throw new ConvexError({ code, message });
}

export function checkId(value: string, what: string) {
  if (!ID_PATTERN.test(value)) {
    fail("INVALID_ARGUMENT", `${what} ${JSON.stringify(value.slice(0, 140))} is not a valid id`);
  }
}

export function checkScope(tenant_id: string, workspace_id: string) {
  checkId(tenant_id, "tenant_id");
  checkId(workspace_id, "workspace_id");
}

function checkCount(value: number, what: string, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    fail("INVALID_ARGUMENT", `${what} must be an integer from 0 to ${max}, got ${value}`);
  }
}

const encoder = new TextEncoder();

function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

/** Approximate size of a document as Convex counts it (its JSON text): for staying within the budgets. */
export function documentSize(doc: object): number {
  return JSON.stringify(doc).length;
}

/** What a function has read and deleted so far, against the read budget. */
class Meter {
  bytes = 0;
  documents = 0;

  read(doc: object | null, times = 1) {
    if (doc === null) return;
    this.bytes += documentSize(doc) * times;
    this.documents += times;
  }

  /** Whether reading (and deleting) `bytes` more, in `documents` documents, stays within the budget. */
  fits(bytes: number, documents = 1) {
    return this.bytes + bytes <= READ_BUDGET_BYTES && this.documents + documents <= DOCUMENT_BUDGET;
  }
}

export type Scope = { tenant_id: string; workspace_id: string };

export async function findRecord(ctx: QueryCtx, scope: Scope, structure_id: string) {
  return await ctx.db
    .query("structures")
    .withIndex("by_tenant_id_and_workspace_id_and_structure_id", (q) =>
      q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id).eq("structure_id", structure_id),
    )
    .unique();
}

async function findChunkSet(ctx: QueryCtx, scope: Scope, structure_id: string, generation: string) {
  return await ctx.db
    .query("structure_chunk_sets")
    .withIndex("by_tenant_id_and_workspace_id_and_structure_id_and_generation", (q) =>
      q
        .eq("tenant_id", scope.tenant_id)
        .eq("workspace_id", scope.workspace_id)
        .eq("structure_id", structure_id)
        .eq("generation", generation),
    )
    .unique();
}

function chunksOf(ctx: QueryCtx, scope: Scope, structure_id: string, generation: string) {
  return ctx.db
    .query("structure_raw_chunks")
    .withIndex("by_tenant_workspace_structure_generation_part_index", (q) =>
      q
        .eq("tenant_id", scope.tenant_id)
        .eq("workspace_id", scope.workspace_id)
        .eq("structure_id", structure_id)
        .eq("generation", generation),
    );
}

function partsBytes(record: Doc<"structures">): number {
  return record.parts.reduce((total, part) => total + part.size, 0);
}

// Make the chunks of `record`'s generation unreachable: delete them now if they fit `budget` (bytes read, counting
// each chunk twice: read, then deleted), else hand them to collectGarbage as a `garbage` chunk set. Returns the
// bytes deleted now and whether garbage was left.
async function retireGeneration(ctx: MutationCtx, record: Doc<"structures">, budget: number) {
  const size = partsBytes(record);
  const count = record.parts.reduce((n, part) => n + part.chunk_count, 0);
  if (record.parts.length === 0) return { deleted: 0, garbage: false };
  if (2 * size <= budget && 2 * count <= DOCUMENT_BUDGET / 4) {
    const chunks = await chunksOf(ctx, record, record.structure_id, record.generation).collect();
    for (const chunk of chunks) await ctx.db.delete(chunk._id);
    return { deleted: 2 * size, garbage: false };
  }
  await markGarbage(ctx, record, record.structure_id, record.generation);
  return { deleted: 0, garbage: true };
}

async function markGarbage(ctx: MutationCtx, scope: Scope, structure_id: string, generation: string) {
  const existing = await findChunkSet(ctx, scope, structure_id, generation);
  if (existing) {
    await ctx.db.patch(existing._id, { state: "garbage", updated_at: Date.now() });
  } else {
    await ctx.db.insert("structure_chunk_sets", {
      tenant_id: scope.tenant_id,
      workspace_id: scope.workspace_id,
      structure_id,
      generation,
      state: "garbage",
      received: [],
      updated_at: Date.now(),
    });
  }
}

/** The distinct elements of a summary: the rows structure_elements holds for the record. */
function elementsOf(summary: { elements?: string[] }): Set<string> {
  return new Set(summary.elements ?? []);
}

/**
 * Bring the structure_elements rows of one record in line with `elements` (empty: the record is gone), as
 * syncLinks of executions.ts does for execution_structures. Returns the documents written.
 */
async function syncElements(ctx: MutationCtx, scope: Scope, structure_id: string, elements: Set<string>) {
  const wanted = new Set(elements);
  let written = 0;
  const rows = await ctx.db
    .query("structure_elements")
    .withIndex("by_tenant_workspace_structure_element", (q) =>
      q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id).eq("structure_id", structure_id),
    )
    .collect();
  for (const row of rows) {
    if (wanted.delete(row.element)) continue; // kept (a second row of the same element is deleted below)
    await ctx.db.delete(row._id);
    written += 1;
  }
  for (const element of wanted) {
    await ctx.db.insert("structure_elements", { ...scope, element, structure_id });
    written += 1;
  }
  return written;
}

const chunkArg = v.object({ part: partName, chunk_index: v.number(), text: v.string() });

async function insertChunk(
  ctx: MutationCtx,
  scope: Scope,
  structure_id: string,
  generation: string,
  chunk: typeof chunkArg.type,
) {
  await ctx.db.insert("structure_raw_chunks", { ...scope, structure_id, generation, ...chunk });
}

function checkChunk(chunk: { part: string; chunk_index: number; text: string }, parts: Map<string, number> | null) {
  checkCount(chunk.chunk_index, `chunk_index of ${chunk.part}`);
  if (parts !== null) {
    const count = parts.get(chunk.part);
    if (count === undefined) fail("INVALID_ARGUMENT", `chunk of part ${chunk.part}, which the record does not declare`);
    if (chunk.chunk_index >= count) {
      fail("INVALID_ARGUMENT", `chunk_index ${chunk.chunk_index} of ${chunk.part} is not below chunk_count ${count}`);
    }
  }
  const size = utf8Length(chunk.text);
  if (size > MAX_CHUNK_BYTES) {
    fail("LIMIT_EXCEEDED", `chunk ${chunk.part}/${chunk.chunk_index} is ${size} bytes; the limit is ${MAX_CHUNK_BYTES}`);
  }
}

// The written fields of a record use the table's own validators, so the two cannot drift apart.
const f = structureFields;
const recordArg = v.object({
  structure_id: f.structure_id,
  generation: f.generation,
  content_hash: f.content_hash,
  source: f.source,
  summary: f.summary,
  node_uuid: f.node_uuid,
  cif: f.cif,
  structure: f.structure,
  params: f.params,
  parts: f.parts,
  // The chunks of every part, or `null` if they were staged with stageChunks under `generation`.
  chunks: v.union(v.array(chunkArg), v.null()),
});

type RecordArg = typeof recordArg.type;

function checkRecord(record: RecordArg) {
  checkId(record.structure_id, "structure_id");
  if (!GENERATION_PATTERN.test(record.generation)) fail("INVALID_ARGUMENT", "generation is not valid");
  if (!SHA256_PATTERN.test(record.content_hash)) fail("INVALID_ARGUMENT", "content_hash is not a sha256 hex digest");
  const inline = [record.cif, record.structure, record.params].reduce((n, text) => n + (text === null ? 0 : utf8Length(text)), 0);
  if (inline > MAX_INLINE_BYTES) {
    fail("LIMIT_EXCEEDED", `${record.structure_id}: inline payloads are ${inline} bytes; the limit is ${MAX_INLINE_BYTES} (send them as chunks)`);
  }
  const parts = new Map<string, number>();
  for (const part of record.parts) {
    if (parts.has(part.name)) fail("INVALID_ARGUMENT", `part ${part.name} is declared twice`);
    checkCount(part.size, `size of ${part.name}`);
    checkCount(part.chunk_count, `chunk_count of ${part.name}`, MAX_CHUNKS_PER_PART);
    if (!SHA256_PATTERN.test(part.sha256)) fail("INVALID_ARGUMENT", `sha256 of ${part.name} is not a hex digest`);
    if (part.name !== "raw" && record[part.name] !== null) {
      fail("INVALID_ARGUMENT", `${part.name} is both inline and chunked`);
    }
    parts.set(part.name, part.chunk_count);
  }
  if (record.chunks !== null) {
    const seen = new Set<string>();
    for (const chunk of record.chunks) {
      checkChunk(chunk, parts);
      const id = `${chunk.part}:${chunk.chunk_index}`;
      if (seen.has(id)) fail("INVALID_ARGUMENT", `chunk ${id} appears twice`);
      seen.add(id);
    }
    const expected = record.parts.reduce((n, p) => n + p.chunk_count, 0);
    if (seen.size !== expected) {
      fail("INVALID_ARGUMENT", `${seen.size} chunks sent for ${record.structure_id}, parts declare ${expected}`);
    }
  }
  return parts;
}

/**
 * Upsert records with their chunks, atomically. A record whose content_hash equals the committed one is left
 * alone (`unchanged`), so a retried call is a no-op. Chunks are either sent inline (`chunks`) or were staged under
 * the record's `generation` by stageChunks. The replaced version's chunks are deleted, or left as a garbage chunk
 * set (`garbage: true` in the result) when they are too large to delete in this mutation.
 *
 * A record belongs to the AiiDA node it was projected from (`node_uuid`): a record of another node (or of none) is
 * not replaced unless `replace_owner` is true; it is reported as `conflict` with its `owner`, and the rest of the
 * batch is committed.
 */
export const putBatch = storeMutation({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    records: v.array(recordArg),
    replace_owner: v.optional(v.boolean()),
  },
  handler: async (ctx, { tenant_id, workspace_id, records, replace_owner }) => {
    checkScope(tenant_id, workspace_id);
    const scope = { tenant_id, workspace_id };
    const ids = new Set<string>();
    for (const record of records) {
      checkRecord(record);
      if (ids.has(record.structure_id)) fail("INVALID_ARGUMENT", `${record.structure_id} appears twice`);
      ids.add(record.structure_id);
    }
    const elementRows = records.reduce((n, record) => n + elementsOf(record.summary).size, 0);
    if (elementRows > MAX_BATCH_ELEMENTS) {
      fail("LIMIT_EXCEEDED", `the records name ${elementRows} elements together; the limit per call is ${MAX_BATCH_ELEMENTS}`);
    }
    let deleteBudget = INLINE_DELETE_BYTES;
    let elementWrites = 0;
    const meter = new Meter();
    const results = [];
    for (const record of records) {
      const existing = await findRecord(ctx, scope, record.structure_id);
      meter.read(existing);
      if (existing !== null && (existing.content_hash === record.content_hash || existing.generation === record.generation)) {
        results.push({ structure_id: record.structure_id, status: "unchanged", chunk_count: existing.chunk_count, garbage: false });
        continue;
      }
      const chunkSet = await findChunkSet(ctx, scope, record.structure_id, record.generation);
      if (existing !== null && existing.node_uuid !== record.node_uuid && replace_owner !== true) {
        // Never replace another node's record; a staged upload for it is garbage now.
        let garbage = false;
        if (record.chunks === null && chunkSet !== null && chunkSet.state === "staging") {
          await ctx.db.patch(chunkSet._id, { state: "garbage", updated_at: Date.now() });
          garbage = true;
        }
        results.push({ structure_id: record.structure_id, status: "conflict", chunk_count: existing.chunk_count, garbage, owner: existing.node_uuid });
        continue;
      }
      if (record.chunks === null) {
        // Staged: every declared chunk must have been received.
        if (chunkSet === null || chunkSet.state !== "staging") {
          fail("INCOMPLETE_UPLOAD", `no staged upload ${record.generation} for ${record.structure_id}`);
        }
        const received = new Set(chunkSet.received);
        for (const part of record.parts) {
          for (let index = 0; index < part.chunk_count; index++) {
            if (!received.has(`${part.name}:${index}`)) {
              fail("INCOMPLETE_UPLOAD", `staged upload of ${record.structure_id} lacks chunk ${part.name}:${index}`);
            }
          }
        }
        if (received.size !== record.parts.reduce((n, p) => n + p.chunk_count, 0)) {
          fail("INCOMPLETE_UPLOAD", `staged upload of ${record.structure_id} has chunks the record does not declare`);
        }
        await ctx.db.delete(chunkSet._id);
      } else {
        // A fresh generation must not have chunks yet (a reused generation could mix two versions).
        if (chunkSet !== null || (await chunksOf(ctx, scope, record.structure_id, record.generation).first()) !== null) {
          fail("CONFLICT", `generation ${record.generation} of ${record.structure_id} is already in use`);
        }
        for (const chunk of record.chunks) {
          await insertChunk(ctx, scope, record.structure_id, record.generation, chunk);
        }
      }
      let garbage = false;
      if (existing !== null) {
        const retired = await retireGeneration(ctx, existing, Math.min(deleteBudget, READ_BUDGET_BYTES - meter.bytes));
        deleteBudget -= retired.deleted;
        meter.bytes += retired.deleted;
        garbage = retired.garbage;
      }
      const raw = record.parts.find((part) => part.name === "raw");
      const now = Date.now();
      const fields = {
        tenant_id,
        workspace_id,
        structure_id: record.structure_id,
        source: record.source,
        summary: record.summary,
        cif: record.cif,
        structure: record.structure,
        params: record.params,
        parts: record.parts,
        generation: record.generation,
        content_hash: record.content_hash,
        node_uuid: record.node_uuid,
        chunk_count: raw?.chunk_count ?? 0,
        raw_size: raw?.size ?? null,
        raw_sha256: raw?.sha256 ?? null,
        updated_at: Math.max(now, existing?.updated_at ?? 0),
      };
      if (existing === null) {
        await ctx.db.insert("structures", { ...fields, created_at: now });
      } else {
        await ctx.db.patch(existing._id, fields);
      }
      // Replacing records whose elements all change deletes rows as well as inserting them.
      elementWrites += await syncElements(ctx, scope, record.structure_id, elementsOf(record.summary));
      if (elementWrites > DOCUMENT_BUDGET) {
        fail("LIMIT_EXCEEDED", `the records change more than ${DOCUMENT_BUDGET} element rows; send fewer per call`);
      }
      results.push({
        structure_id: record.structure_id,
        status: existing === null ? "created" : "updated",
        chunk_count: fields.chunk_count,
        garbage,
      });
    }
    return results;
  },
});

/**
 * Stage chunks of a large record under a new `generation`, before putBatch commits it with `chunks: null`.
 * Idempotent: a chunk already received is skipped. Readers never see staged chunks.
 */
export const stageChunks = storeMutation({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    generation: v.string(),
    chunks: v.array(chunkArg),
  },
  handler: async (ctx, { tenant_id, workspace_id, structure_id, generation, chunks }) => {
    checkScope(tenant_id, workspace_id);
    checkId(structure_id, "structure_id");
    if (!GENERATION_PATTERN.test(generation)) fail("INVALID_ARGUMENT", "generation is not valid");
    const scope = { tenant_id, workspace_id };
    const record = await findRecord(ctx, scope, structure_id);
    if (record !== null && record.generation === generation) {
      return { received: -1, committed: true };
    }
    let chunkSet = await findChunkSet(ctx, scope, structure_id, generation);
    if (chunkSet !== null && chunkSet.state !== "staging") {
      fail("CONFLICT", `generation ${generation} of ${structure_id} was retired; stage under a new generation`);
    }
    if (chunkSet === null) {
      if ((await chunksOf(ctx, scope, structure_id, generation).first()) !== null) {
        fail("CONFLICT", `generation ${generation} of ${structure_id} is already in use`);
      }
      const id = await ctx.db.insert("structure_chunk_sets", {
        tenant_id,
        workspace_id,
        structure_id,
        generation,
        state: "staging",
        received: [],
        updated_at: Date.now(),
      });
      chunkSet = (await ctx.db.get(id))!;
    }
    const received = new Set(chunkSet.received);
    for (const chunk of chunks) {
      checkChunk(chunk, null);
      const id = `${chunk.part}:${chunk.chunk_index}`;
      if (received.has(id)) continue;
      received.add(id);
      await insertChunk(ctx, scope, structure_id, generation, chunk);
    }
    if (received.size > MAX_CHUNKS_PER_PART) fail("LIMIT_EXCEEDED", `an upload may have at most ${MAX_CHUNKS_PER_PART} chunks`);
    await ctx.db.patch(chunkSet._id, { received: [...received], updated_at: Date.now() });
    return { received: received.size, committed: false };
  },
});

/** The committed record, or null. */
export const getStructure = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), structure_id: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, structure_id }) => {
    checkScope(tenant_id, workspace_id);
    checkId(structure_id, "structure_id");
    const record = await findRecord(ctx, { tenant_id, workspace_id }, structure_id);
    if (record === null) return null;
    const { _id, _creationTime, ...fields } = record;
    return fields;
  },
});

/**
 * The committed records of `structure_ids` (at most maxGetStructures, one workspace), in the order asked, null for
 * those that have none: one round trip for a page of entries. Each is what getStructure returns; a record whose
 * CIF, structure or parameters are chunked (null here, listed in `parts`) is read whole with readChunks.
 */
export const getStructures = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), structure_ids: v.array(v.string()) },
  handler: async (ctx, { tenant_id, workspace_id, structure_ids }) => {
    checkScope(tenant_id, workspace_id);
    if (structure_ids.length > MAX_GET_STRUCTURES) {
      fail("LIMIT_EXCEEDED", `at most ${MAX_GET_STRUCTURES} structure_ids per call`);
    }
    const found = [];
    for (const structure_id of structure_ids) {
      checkId(structure_id, "structure_id");
      const record = await findRecord(ctx, { tenant_id, workspace_id }, structure_id);
      if (record === null) {
        found.push(null);
        continue;
      }
      const { _id, _creationTime, ...fields } = record;
      found.push(fields);
    }
    return found;
  },
});

/**
 * Chunks of one part of one generation, from `from_index` on, in order, stopping after about `max_bytes`.
 * `next_index` is null when the part has no more chunks.
 */
export const readChunks = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    generation: v.string(),
    part: partName,
    from_index: v.number(),
    max_bytes: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    checkScope(args.tenant_id, args.workspace_id);
    checkId(args.structure_id, "structure_id");
    checkCount(args.from_index, "from_index");
    const budget = args.max_bytes ?? DEFAULT_PAGE_BYTES;
    checkCount(budget, "max_bytes", limits.protocol.maxReadPageBytes);
    const query = ctx.db
      .query("structure_raw_chunks")
      .withIndex("by_tenant_workspace_structure_generation_part_index", (q) =>
        q
          .eq("tenant_id", args.tenant_id)
          .eq("workspace_id", args.workspace_id)
          .eq("structure_id", args.structure_id)
          .eq("generation", args.generation)
          .eq("part", args.part)
          .gte("chunk_index", args.from_index),
      );
    const chunks: { chunk_index: number; text: string }[] = [];
    let bytes = 0;
    for await (const chunk of query) {
      // The reply's JSON text is what counts against the 16 MiB return limit (escapes can make it larger).
      const size = Math.max(utf8Length(chunk.text), JSON.stringify(chunk.text).length);
      if (chunks.length > 0 && bytes + size > budget) {
        return { chunks, next_index: chunk.chunk_index };
      }
      chunks.push({ chunk_index: chunk.chunk_index, text: chunk.text });
      bytes += size;
    }
    return { chunks, next_index: null };
  },
});

export function toSummary(record: Doc<"structures">) {
  return {
    tenant_id: record.tenant_id,
    workspace_id: record.workspace_id,
    structure_id: record.structure_id,
    source: record.source,
    summary: record.summary,
    node_uuid: record.node_uuid,
    content_hash: record.content_hash,
    chunk_count: record.chunk_count,
    raw_size: record.raw_size,
    raw_sha256: record.raw_sha256,
    created_at: record.created_at,
    updated_at: record.updated_at,
  };
}

/**
 * One page of a workspace's record summaries, most recently updated first; `updated_min`/`updated_max` (inclusive,
 * milliseconds) restrict it to a range of `updated_at` within the index (the same range with every page's cursor).
 */
export const listStructures = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    paginationOpts: paginationOptsValidator,
    updated_min: v.optional(v.number()),
    updated_max: v.optional(v.number()),
  },
  handler: async (ctx, { tenant_id, workspace_id, paginationOpts, updated_min, updated_max }) => {
    checkScope(tenant_id, workspace_id);
    checkCount(paginationOpts.numItems, "numItems", limits.protocol.maxListPage);
    if (paginationOpts.numItems < 1) fail("INVALID_ARGUMENT", "numItems must be at least 1");
    for (const [name, value] of [["updated_min", updated_min], ["updated_max", updated_max]] as const) {
      if (value !== undefined && !Number.isFinite(value)) fail("INVALID_ARGUMENT", `${name} must be a finite number`);
    }
    const page = await ctx.db
      .query("structures")
      .withIndex("by_tenant_id_and_workspace_id_and_updated_at", (q) => {
        const scoped = q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id);
        if (updated_min !== undefined && updated_max !== undefined) {
          return scoped.gte("updated_at", updated_min).lte("updated_at", updated_max);
        }
        if (updated_min !== undefined) return scoped.gte("updated_at", updated_min);
        if (updated_max !== undefined) return scoped.lte("updated_at", updated_max);
        return scoped;
      })
      .order("desc")
      .paginate({ ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES });
    return { page: page.page.map(toSummary), isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/** `content_hash` of each of `structure_ids` that has a committed record. */
export const contentHashes = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), structure_ids: v.array(v.string()) },
  handler: async (ctx, { tenant_id, workspace_id, structure_ids }) => {
    checkScope(tenant_id, workspace_id);
    if (structure_ids.length > MAX_HASH_IDS) fail("LIMIT_EXCEEDED", `at most ${MAX_HASH_IDS} structure_ids per call`);
    const found = [];
    for (const structure_id of structure_ids) {
      checkId(structure_id, "structure_id");
      const record = await findRecord(ctx, { tenant_id, workspace_id }, structure_id);
      if (record !== null) found.push({ structure_id, content_hash: record.content_hash });
    }
    return found;
  },
});

/** Delete a record; its chunks become a garbage chunk set for collectGarbage. */
export const removeStructure = storeMutation({
  args: { tenant_id: v.string(), workspace_id: v.string(), structure_id: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, structure_id }) => {
    checkScope(tenant_id, workspace_id);
    checkId(structure_id, "structure_id");
    const record = await findRecord(ctx, { tenant_id, workspace_id }, structure_id);
    if (record === null) return { existed: false, garbage: false };
    const { garbage } = await retireGeneration(ctx, record, INLINE_DELETE_BYTES);
    await syncElements(ctx, { tenant_id, workspace_id }, structure_id, new Set());
    await ctx.db.delete(record._id);
    return { existed: true, garbage };
  },
});

/**
 * Bring structure_elements in line with the committed records, one page of records (in structure id order) per
 * call: for deployments whose records were committed before the table existed, or to check it. Call again with
 * `continueCursor` while `isDone` is false; `written` counts the rows inserted or deleted.
 */
export const syncStructureElements = storeMutation({
  args: { tenant_id: v.string(), workspace_id: v.string(), paginationOpts: paginationOptsValidator },
  handler: async (ctx, { tenant_id, workspace_id, paginationOpts }) => {
    checkScope(tenant_id, workspace_id);
    checkCount(paginationOpts.numItems, "numItems", limits.protocol.maxListPage);
    if (paginationOpts.numItems < 1) fail("INVALID_ARGUMENT", "numItems must be at least 1");
    const scope = { tenant_id, workspace_id };
    const page = await ctx.db
      .query("structures")
      .withIndex("by_tenant_id_and_workspace_id_and_structure_id", (q) =>
        q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id),
      )
      .paginate({ ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES / 2 });
    let written = 0;
    for (const record of page.page) {
      written += await syncElements(ctx, scope, record.structure_id, elementsOf(record.summary));
    }
    return { checked: page.page.length, written, isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/**
 * Delete chunks no committed record references: garbage chunk sets (any age) and staging uploads not touched for
 * `older_than_ms`. Works through at most about `max_bytes` of chunks per call (every chunk is read, then deleted,
 * which reads it again); call again while `done` is false. With `structure_id`, only that structure's chunk sets
 * are considered.
 */
export const collectGarbage = storeMutation({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.optional(v.string()),
    older_than_ms: v.number(),
    max_bytes: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    checkScope(args.tenant_id, args.workspace_id);
    if (args.structure_id !== undefined) checkId(args.structure_id, "structure_id");
    if (!(args.older_than_ms >= 0)) fail("INVALID_ARGUMENT", "older_than_ms must be a non-negative number");
    const budget = args.max_bytes ?? GC_PAGE_BYTES;
    checkCount(budget, "max_bytes", READ_BUDGET_BYTES / 2);
    const scope = { tenant_id: args.tenant_id, workspace_id: args.workspace_id };
    const cutoff = Date.now() - args.older_than_ms;
    const base =
      args.structure_id === undefined
        ? ctx.db
            .query("structure_chunk_sets")
            .withIndex("by_tenant_id_and_workspace_id_and_updated_at", (q) =>
              q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id),
            )
        : ctx.db
            .query("structure_chunk_sets")
            .withIndex("by_tenant_id_and_workspace_id_and_structure_id_and_generation", (q) =>
              q
                .eq("tenant_id", scope.tenant_id)
                .eq("workspace_id", scope.workspace_id)
                .eq("structure_id", args.structure_id!),
            );
    // Staging uploads touched within `older_than_ms` may still be in progress: leave them alone.
    const sets = await base
      .filter((q) => q.or(q.eq(q.field("state"), "garbage"), q.lte(q.field("updated_at"), cutoff)))
      .take(SETS_PER_CALL + 1);
    const meter = new Meter();
    sets.forEach((set) => meter.read(set));
    let deleted = 0;
    let chunkBytes = 0;
    for (const set of sets.slice(0, SETS_PER_CALL)) {
      const live = await findRecord(ctx, scope, set.structure_id);
      meter.read(live);
      if (live !== null && live.generation === set.generation) {
        await ctx.db.delete(set._id); // committed after all: nothing to collect
        continue;
      }
      // Collect first, delete afterwards: never delete from a range that is still being iterated. Each chunk
      // counts twice against the budget (read, then deleted); the first chunk of a call is always taken, so
      // every call makes progress.
      const doomed = [];
      let complete = true;
      for await (const chunk of chunksOf(ctx, scope, set.structure_id, set.generation)) {
        const size = documentSize(chunk);
        const first = deleted === 0 && doomed.length === 0;
        if (!first && (chunkBytes + size > budget || !meter.fits(2 * size, 2))) {
          complete = false;
          break;
        }
        chunkBytes += size;
        meter.read(chunk, 2);
        doomed.push(chunk._id);
      }
      for (const id of doomed) await ctx.db.delete(id);
      deleted += doomed.length;
      if (!complete) return { deleted, done: false };
      await ctx.db.delete(set._id);
    }
    return { deleted, done: sets.length <= SETS_PER_CALL };
  },
});

/**
 * Storage accounting of a workspace, one page at a time (for tests and diagnostics): committed records and the
 * chunks they declare (`table: "structures"`), chunks (`"chunks"`), or chunk sets no record references
 * (`"chunk_sets"`, listed). Call again with `continueCursor` while `isDone` is false.
 */
export const storageStats = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    table: v.union(v.literal("structures"), v.literal("chunks"), v.literal("chunk_sets")),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { tenant_id, workspace_id, table, paginationOpts }) => {
    checkScope(tenant_id, workspace_id);
    checkCount(paginationOpts.numItems, "numItems", 4000);
    const options = { ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES };
    if (table === "structures") {
      const page = await ctx.db
        .query("structures")
        .withIndex("by_tenant_id_and_workspace_id_and_structure_id", (q) =>
          q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id),
        )
        .paginate(options);
      const committed = page.page.reduce((n, r) => n + r.parts.reduce((m, part) => m + part.chunk_count, 0), 0);
      return { count: page.page.length, committed_chunks: committed, chunk_sets: [], isDone: page.isDone, continueCursor: page.continueCursor };
    }
    if (table === "chunks") {
      const page = await ctx.db
        .query("structure_raw_chunks")
        .withIndex("by_tenant_workspace_structure_generation_part_index", (q) =>
          q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id),
        )
        .paginate(options);
      return { count: page.page.length, committed_chunks: 0, chunk_sets: [], isDone: page.isDone, continueCursor: page.continueCursor };
    }
    const page = await ctx.db
      .query("structure_chunk_sets")
      .withIndex("by_tenant_id_and_workspace_id_and_updated_at", (q) =>
        q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id),
      )
      .paginate(options);
    const sets = page.page.map((set) => ({
      structure_id: set.structure_id,
      generation: set.generation,
      state: set.state,
      received: set.received.length,
      updated_at: set.updated_at,
    }));
    return { count: sets.length, committed_chunks: 0, chunk_sets: sets, isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/** The id of this deployment's projection data: created once, gone when the data is gone (a reset store). */
export const getInstance = storeQuery({
  args: {},
  handler: async (ctx) => {
    const first = await ctx.db.query("structstore_instance").first();
    return first === null ? null : first.instance_id;
  },
});

/** Create the instance id if there is none yet; return it. */
export const ensureInstance = storeMutation({
  args: { candidate: v.string() },
  handler: async (ctx, { candidate }) => {
    if (!GENERATION_PATTERN.test(candidate)) fail("INVALID_ARGUMENT", "candidate is not a valid instance id");
    const first = await ctx.db.query("structstore_instance").first();
    if (first !== null) return first.instance_id;
    await ctx.db.insert("structstore_instance", { instance_id: candidate, created_at: Date.now() });
    return candidate;
  },
});
