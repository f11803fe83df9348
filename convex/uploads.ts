// Convex functions of uploads: files the application's users hand in, waiting to be imported into AiiDA.
//
// As in structures.ts, every function is built by layout.ts (public to the mounting app in the component, internal
// standalone: callable with the deploy key, never by a browser), takes tenant and workspace and uses both in every
// index range (claimUpload may range over a tenant or over every tenant: the importer's view), checks its arguments
// beyond the validators, and throws `ConvexError({code, message})` for expected failures. A claim is one mutation,
// and Convex runs each mutation as one serializable transaction: two importers that call claimUpload at once never
// both get the same upload. Every mutation is idempotent, as the client retries one whose reply it did not get: a
// claim, completion or failure sent again with the same claim token answers what the first did. docs/uploads.md
// describes the round trip.
import { ConvexError, v } from "convex/values";
import { paginationOptsValidator } from "convex/server";
import type { Doc } from "./_generated/dataModel";
import type { MutationCtx, QueryCtx } from "./_generated/server";
import { storeMutation, storeQuery } from "./layout";
import { uploadFields } from "./schema";
import limits from "./limits.json";

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const GENERATION_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;
export const MAX_CHUNK_BYTES = limits.protocol.maxChunkBytes;
export const MAX_CHUNKS = limits.protocol.maxChunksPerPart;
export const MAX_UPLOAD_BYTES = limits.protocol.maxUploadBytes;
const MAX_MESSAGE = limits.protocol.maxUploadMessageChars;
export const MAX_PAGE = limits.protocol.maxListPage;
// Half of a transaction's limits, as in structures.ts.
const READ_BUDGET_BYTES = limits.convex.transactionReadBytes / 2;
// readUploadChunks returns at most about this many bytes per call unless asked for less.
const DEFAULT_PAGE_BYTES = 8 * 1024 * 1024;
// claimUpload looks at this many `importing` uploads for an expired lease before it takes a pending one: importing
// uploads are as many as importers run at once, plus those of importers that stopped (each re-claimed or failed by
// the next claims).
export const CLAIM_SCAN = 200;
// The longest lease: a day.
const MAX_LEASE_MS = 86_400_000;
// collectUploadGarbage deletes at most about this many bytes of chunks per call.
const GC_PAGE_BYTES = 3 * 1024 * 1024;

type Code = "INVALID_ARGUMENT" | "NOT_FOUND" | "CONFLICT" | "INCOMPLETE_UPLOAD" | "LIMIT_EXCEEDED" | "CLAIM_LOST";
type Scope = { tenant_id: string; workspace_id: string };

function fail(code: Code, message: string): never {
  throw new ConvexError({ code, message });
}

function checkId(value: string, what: string) {
  if (!ID_PATTERN.test(value)) fail("INVALID_ARGUMENT", `${what} ${JSON.stringify(value.slice(0, 140))} is not a valid id`);
}

function checkScope(tenant_id: string, workspace_id: string) {
  checkId(tenant_id, "tenant_id");
  checkId(workspace_id, "workspace_id");
}

function checkCount(value: number, what: string, max = Number.MAX_SAFE_INTEGER) {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    fail("INVALID_ARGUMENT", `${what} must be an integer from 0 to ${max}, got ${value}`);
  }
}

// Characters as Python counts them (code points, not UTF-16 units): the limits are the Python side's.
function characters(value: string): number {
  return [...value].length;
}

function checkText(value: string, what: string, max: number) {
  if (value.length === 0 || characters(value) > max) fail("INVALID_ARGUMENT", `${what} must have 1 to ${max} characters`);
  // Control and bidirectional-override characters: never shown to people (the Python side refuses them too).
  if (/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(value)) {
    fail("INVALID_ARGUMENT", `${what} contains a control or formatting character`);
  }
}

function checkToken(value: string) {
  if (!TOKEN_PATTERN.test(value)) fail("INVALID_ARGUMENT", "claim token is not valid");
}

const encoder = new TextEncoder();

function name(scope: Scope, upload_id: string) {
  return `${scope.tenant_id}/${scope.workspace_id}/upload ${upload_id}`;
}

async function findUpload(ctx: QueryCtx, scope: Scope, upload_id: string) {
  return await ctx.db
    .query("uploads")
    .withIndex("by_tenant_id_and_workspace_id_and_upload_id", (q) =>
      q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id).eq("upload_id", upload_id),
    )
    .unique();
}

async function findChunkSet(ctx: QueryCtx, scope: Scope, upload_id: string, generation: string) {
  return await ctx.db
    .query("upload_chunk_sets")
    .withIndex("by_tenant_id_and_workspace_id_and_upload_id_and_generation", (q) =>
      q
        .eq("tenant_id", scope.tenant_id)
        .eq("workspace_id", scope.workspace_id)
        .eq("upload_id", upload_id)
        .eq("generation", generation),
    )
    .unique();
}

function chunksOf(ctx: QueryCtx, scope: Scope, upload_id: string, generation: string) {
  return ctx.db
    .query("upload_chunks")
    .withIndex("by_tenant_workspace_upload_generation_index", (q) =>
      q
        .eq("tenant_id", scope.tenant_id)
        .eq("workspace_id", scope.workspace_id)
        .eq("upload_id", upload_id)
        .eq("generation", generation),
    );
}

/** What a reader sees of an upload: every field but the claim token and the storage details. */
function fields(upload: Doc<"uploads">) {
  const { _id, _creationTime, claim_token, encoding, stored_size, stored_sha256, chunk_count, generation, ...rest } =
    upload;
  return rest;
}

const chunkArg = v.object({ chunk_index: v.number(), text: v.string() });

function checkChunk(chunk: { chunk_index: number; text: string }) {
  checkCount(chunk.chunk_index, "chunk_index", MAX_CHUNKS - 1);
  if (encoder.encode(chunk.text).length > MAX_CHUNK_BYTES) {
    fail("LIMIT_EXCEEDED", `chunk ${chunk.chunk_index} is larger than ${MAX_CHUNK_BYTES} bytes`);
  }
}

const u = uploadFields;

/**
 * Create an upload (status `pending`), or return the one of the same bytes in the workspace (`created: false`).
 * Its chunks come with the call (`chunks`), or were staged under `generation` with stageUploadChunks (`chunks:
 * null`). The upload id is the sha256's: `u` and its first 32 digits, so one upload per bytes and workspace.
 */
export const createUpload = storeMutation({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    upload_id: v.string(),
    filename: v.string(),
    kind: u.kind,
    size: v.number(),
    sha256: v.string(),
    encoding: u.encoding,
    stored_size: v.number(),
    stored_sha256: v.string(),
    chunk_count: v.number(),
    generation: v.string(),
    uploaded_by: v.string(),
    structure_id: u.structure_id,
    chunks: v.union(v.array(chunkArg), v.null()),
  },
  handler: async (ctx, args) => {
    checkScope(args.tenant_id, args.workspace_id);
    if (!SHA256_PATTERN.test(args.sha256) || !SHA256_PATTERN.test(args.stored_sha256)) {
      fail("INVALID_ARGUMENT", "sha256 must be 64 lowercase hex digits");
    }
    if (args.upload_id !== `u${args.sha256.slice(0, 32)}`) fail("INVALID_ARGUMENT", "upload_id is not the sha256's");
    if (!GENERATION_PATTERN.test(args.generation)) fail("INVALID_ARGUMENT", "generation is not valid");
    checkText(args.filename, "filename", 255);
    if (/[/\\]/.test(args.filename)) fail("INVALID_ARGUMENT", "filename must be a file name, without a directory");
    checkText(args.uploaded_by, "uploaded_by", 255);
    if (args.structure_id !== null) checkId(args.structure_id, "structure_id");
    checkCount(args.size, "size", MAX_UPLOAD_BYTES);
    if (args.size === 0) fail("INVALID_ARGUMENT", "the file is empty");
    checkCount(args.stored_size, "stored_size", Math.ceil((MAX_UPLOAD_BYTES * 4) / 3) + 4);
    checkCount(args.chunk_count, "chunk_count", MAX_CHUNKS);
    const scope = { tenant_id: args.tenant_id, workspace_id: args.workspace_id };
    const existing = await findUpload(ctx, scope, args.upload_id);
    if (existing !== null) {
      if (args.chunks === null && existing.generation !== args.generation) {
        // Another creator of the same bytes committed first: what this one staged is garbage.
        const set = await findChunkSet(ctx, scope, args.upload_id, args.generation);
        if (set !== null) await ctx.db.patch(set._id, { state: "garbage", updated_at: Date.now() });
      }
      return { record: fields(existing), created: false };
    }
    if (args.chunks !== null) {
      let bytes = 0;
      args.chunks.forEach((chunk, index) => {
        checkChunk(chunk);
        if (chunk.chunk_index !== index) fail("INVALID_ARGUMENT", `chunk ${chunk.chunk_index} sent as chunk ${index}`);
        bytes += encoder.encode(chunk.text).length;
      });
      if (args.chunks.length !== args.chunk_count || bytes !== args.stored_size) {
        fail("INVALID_ARGUMENT", `the chunks sent are not the ${args.chunk_count} chunks of ${args.stored_size} bytes`);
      }
      if ((await chunksOf(ctx, scope, args.upload_id, args.generation).first()) !== null) {
        fail("CONFLICT", `generation ${args.generation} of ${args.upload_id} is already in use`);
      }
      for (const chunk of args.chunks) {
        await ctx.db.insert("upload_chunks", { ...scope, upload_id: args.upload_id, generation: args.generation, ...chunk });
      }
    } else {
      const set = await findChunkSet(ctx, scope, args.upload_id, args.generation);
      if (set === null || set.state !== "staging" || set.received.length !== args.chunk_count) {
        fail(
          "INCOMPLETE_UPLOAD",
          `${name(scope, args.upload_id)}: ${set?.received.length ?? 0} of ${args.chunk_count} chunks were staged`,
        );
      }
      await ctx.db.delete(set._id);
    }
    const now = Date.now();
    const id = await ctx.db.insert("uploads", {
      ...scope,
      upload_id: args.upload_id,
      filename: args.filename,
      kind: args.kind,
      status: "pending",
      size: args.size,
      sha256: args.sha256,
      encoding: args.encoding,
      stored_size: args.stored_size,
      stored_sha256: args.stored_sha256,
      chunk_count: args.chunk_count,
      generation: args.generation,
      uploaded_by: args.uploaded_by,
      structure_id: args.structure_id,
      result_structure_id: null,
      node_uuid: null,
      message: null,
      claimed_by: null,
      claim_token: null,
      claim_expires_at: null,
      attempts: 0,
      created_at: now,
      updated_at: now,
    });
    return { record: fields((await ctx.db.get(id))!), created: true };
  },
});

/**
 * Stage chunks of a large upload under `generation`, before createUpload commits it with `chunks: null`.
 * Idempotent: a chunk already received is skipped. Nothing reads staged chunks before the commit.
 */
export const stageUploadChunks = storeMutation({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    upload_id: v.string(),
    generation: v.string(),
    chunks: v.array(chunkArg),
  },
  handler: async (ctx, { tenant_id, workspace_id, upload_id, generation, chunks }) => {
    checkScope(tenant_id, workspace_id);
    checkId(upload_id, "upload_id");
    if (!GENERATION_PATTERN.test(generation)) fail("INVALID_ARGUMENT", "generation is not valid");
    const scope = { tenant_id, workspace_id };
    const existing = await findUpload(ctx, scope, upload_id);
    if (existing !== null) return { received: -1, committed: true };
    let set = await findChunkSet(ctx, scope, upload_id, generation);
    if (set !== null && set.state !== "staging") fail("CONFLICT", `generation ${generation} was retired`);
    if (set === null) {
      const id = await ctx.db.insert("upload_chunk_sets", {
        ...scope,
        upload_id,
        generation,
        state: "staging",
        received: [],
        updated_at: Date.now(),
      });
      set = (await ctx.db.get(id))!;
    }
    const received = new Set(set.received);
    for (const chunk of chunks) {
      checkChunk(chunk);
      if (received.has(chunk.chunk_index)) continue;
      received.add(chunk.chunk_index);
      await ctx.db.insert("upload_chunks", { ...scope, upload_id, generation, ...chunk });
    }
    await ctx.db.patch(set._id, { received: [...received].sort((a, b) => a - b), updated_at: Date.now() });
    return { received: received.size, committed: false };
  },
});

/** The upload, or null. */
export const getUpload = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), upload_id: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, upload_id }) => {
    checkScope(tenant_id, workspace_id);
    checkId(upload_id, "upload_id");
    const upload = await findUpload(ctx, { tenant_id, workspace_id }, upload_id);
    return upload === null ? null : fields(upload);
  },
});

/**
 * The upload's stored form (`encoding`, `stored_size`, `stored_sha256`, `chunk_count`) and its chunks from
 * `from_index` on, in order, stopping after about `max_bytes`; `next_index` is null after the last chunk. An
 * upload's chunks never change once it is committed, so pages of several calls belong together.
 */
export const readUploadChunks = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    upload_id: v.string(),
    from_index: v.number(),
    max_bytes: v.optional(v.number()),
  },
  handler: async (ctx, args) => {
    checkScope(args.tenant_id, args.workspace_id);
    checkId(args.upload_id, "upload_id");
    checkCount(args.from_index, "from_index");
    const budget = args.max_bytes ?? DEFAULT_PAGE_BYTES;
    checkCount(budget, "max_bytes", limits.protocol.maxReadPageBytes);
    const scope = { tenant_id: args.tenant_id, workspace_id: args.workspace_id };
    const upload = await findUpload(ctx, scope, args.upload_id);
    if (upload === null) return null;
    const stored = {
      encoding: upload.encoding,
      size: upload.size,
      sha256: upload.sha256,
      stored_size: upload.stored_size,
      stored_sha256: upload.stored_sha256,
      chunk_count: upload.chunk_count,
    };
    const chunks: { chunk_index: number; text: string }[] = [];
    let bytes = 0;
    const query = ctx.db
      .query("upload_chunks")
      .withIndex("by_tenant_workspace_upload_generation_index", (q) =>
        q
          .eq("tenant_id", args.tenant_id)
          .eq("workspace_id", args.workspace_id)
          .eq("upload_id", args.upload_id)
          .eq("generation", upload.generation)
          .gte("chunk_index", args.from_index),
      );
    for await (const chunk of query) {
      const size = Math.max(encoder.encode(chunk.text).length, JSON.stringify(chunk.text).length);
      if (chunks.length > 0 && bytes + size > budget) return { ...stored, chunks, next_index: chunk.chunk_index };
      chunks.push({ chunk_index: chunk.chunk_index, text: chunk.text });
      bytes += size;
    }
    return { ...stored, chunks, next_index: null };
  },
});

/** One page of a workspace's uploads, newest first; with `status`, only those in that state. */
export const listUploads = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    status: v.optional(u.status),
    paginationOpts: paginationOptsValidator,
  },
  handler: async (ctx, { tenant_id, workspace_id, status, paginationOpts }) => {
    checkScope(tenant_id, workspace_id);
    if (!Number.isInteger(paginationOpts.numItems) || paginationOpts.numItems < 1 || paginationOpts.numItems > MAX_PAGE) {
      fail("INVALID_ARGUMENT", `numItems must be an integer from 1 to ${MAX_PAGE}`);
    }
    const base =
      status === undefined
        ? ctx.db
            .query("uploads")
            .withIndex("by_tenant_id_and_workspace_id_and_created_at", (q) =>
              q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id),
            )
        : ctx.db
            .query("uploads")
            .withIndex("by_tenant_id_and_workspace_id_and_status_and_created_at", (q) =>
              q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id).eq("status", status),
            );
    // Upload documents are small (about 1 KB): a page of 200 reads well under the budget.
    const page = await base.order("desc").paginate({ ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES / 4 });
    return { page: page.page.map(fields), isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

type Status = Doc<"uploads">["status"];

function byStatus(ctx: QueryCtx, status: Status, tenant_id: string | undefined, workspace_id: string | undefined) {
  if (tenant_id !== undefined && workspace_id !== undefined) {
    return ctx.db
      .query("uploads")
      .withIndex("by_tenant_id_and_workspace_id_and_status_and_created_at", (q) =>
        q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id).eq("status", status),
      );
  }
  if (tenant_id !== undefined) {
    return ctx.db
      .query("uploads")
      .withIndex("by_tenant_id_and_status_and_created_at", (q) => q.eq("tenant_id", tenant_id).eq("status", status));
  }
  return ctx.db.query("uploads").withIndex("by_status_and_created_at", (q) => q.eq("status", status));
}

/**
 * Take one upload for the claim `token`: an `importing` one whose lease expired (oldest first), else the oldest
 * `pending` one; null if there is none. An expired one claimed `max_attempts` times already is marked `failed`
 * instead. `tenant_id` (and `workspace_id`) restrict the claim to their uploads. One transaction: two claims never
 * take the same upload.
 */
export const claimUpload = storeMutation({
  args: {
    claimer: v.string(),
    token: v.string(),
    lease_ms: v.number(),
    max_attempts: v.number(),
    tenant_id: v.optional(v.string()),
    workspace_id: v.optional(v.string()),
  },
  handler: async (ctx, args) => {
    checkText(args.claimer, "claimer", 255);
    checkToken(args.token);
    checkCount(args.lease_ms, "lease_ms", MAX_LEASE_MS);
    checkCount(args.max_attempts, "max_attempts", 100);
    if (args.tenant_id !== undefined) checkId(args.tenant_id, "tenant_id");
    if (args.workspace_id !== undefined) {
      if (args.tenant_id === undefined) fail("INVALID_ARGUMENT", "a claim restricted to a workspace needs its tenant_id");
      checkId(args.workspace_id, "workspace_id");
    }
    // The same token again is the same claim sent again (a retry after a lost reply): the upload it took.
    const same = await ctx.db
      .query("uploads")
      .withIndex("by_claim_token", (q) => q.eq("claim_token", args.token))
      .first();
    if (same !== null) return same.status === "importing" ? fields(same) : null;
    const now = Date.now();
    const take = async (upload: Doc<"uploads">) => {
      await ctx.db.patch(upload._id, {
        status: "importing",
        claimed_by: args.claimer,
        claim_token: args.token,
        claim_expires_at: now + args.lease_ms,
        attempts: upload.attempts + 1,
        updated_at: now,
      });
      return fields((await ctx.db.get(upload._id))!);
    };
    const importing = await byStatus(ctx, "importing", args.tenant_id, args.workspace_id).take(CLAIM_SCAN);
    for (const upload of importing) {
      if (upload.claim_expires_at === null || upload.claim_expires_at > now) continue;
      if (upload.attempts >= args.max_attempts) {
        await ctx.db.patch(upload._id, {
          status: "failed",
          message: `the import was interrupted ${upload.attempts} times without finishing (the importer stopped each time)`,
          claim_token: null,
          updated_at: now,
        });
        continue;
      }
      return await take(upload);
    }
    const pending = await byStatus(ctx, "pending", args.tenant_id, args.workspace_id).first();
    return pending === null ? null : await take(pending);
  },
});

async function find(ctx: MutationCtx, scope: Scope, upload_id: string, token: string) {
  checkScope(scope.tenant_id, scope.workspace_id);
  checkId(upload_id, "upload_id");
  checkToken(token);
  const upload = await findUpload(ctx, scope, upload_id);
  if (upload === null) fail("NOT_FOUND", `no ${name(scope, upload_id)}`);
  return upload;
}

function claimLost(scope: Scope, upload: Doc<"uploads">): never {
  const why =
    upload.status === "importing" ? "its lease expired and another importer claimed the upload" : `the upload is ${upload.status}`;
  fail("CLAIM_LOST", `${name(scope, upload.upload_id)}: the claim is no longer held (${why})`);
}

async function held(ctx: MutationCtx, scope: Scope, upload_id: string, token: string) {
  const upload = await find(ctx, scope, upload_id, token);
  if (upload.status !== "importing" || upload.claim_token !== token) claimLost(scope, upload);
  return upload;
}

const claimArgs = { tenant_id: v.string(), workspace_id: v.string(), upload_id: v.string(), token: v.string() };

/** Extend a claim's lease to `lease_ms` from now. */
export const renewUpload = storeMutation({
  args: { ...claimArgs, lease_ms: v.number() },
  handler: async (ctx, { tenant_id, workspace_id, upload_id, token, lease_ms }) => {
    checkCount(lease_ms, "lease_ms", MAX_LEASE_MS);
    const upload = await held(ctx, { tenant_id, workspace_id }, upload_id, token);
    const now = Date.now();
    await ctx.db.patch(upload._id, { claim_expires_at: now + lease_ms, updated_at: now });
    return fields((await ctx.db.get(upload._id))!);
  },
});

/** Mark a claimed upload imported: the structure id it was projected under and the AiiDA node. */
export const completeUpload = storeMutation({
  args: { ...claimArgs, structure_id: v.string(), node_uuid: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, upload_id, token, structure_id, node_uuid }) => {
    checkId(structure_id, "structure_id");
    if (node_uuid.length === 0 || node_uuid.length > 64) fail("INVALID_ARGUMENT", "node_uuid must have 1 to 64 characters");
    const scope = { tenant_id, workspace_id };
    const done = await find(ctx, scope, upload_id, token);
    if (done.status === "imported" && done.claim_token === token) {
      // The same call sent again (a retry after a lost reply): what it did, or a conflict if it is not the same.
      if (done.result_structure_id === structure_id && done.node_uuid === node_uuid) return fields(done);
      claimLost(scope, done);
    }
    const upload = await held(ctx, scope, upload_id, token);
    // The token stays, so that the same call sent again is recognised (the token is never returned).
    await ctx.db.patch(upload._id, { status: "imported", result_structure_id: structure_id, node_uuid, updated_at: Date.now() });
    return fields((await ctx.db.get(upload._id))!);
  },
});

/** Mark a claimed upload failed with one message (the parse error). */
export const failUpload = storeMutation({
  args: { ...claimArgs, message: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, upload_id, token, message }) => {
    if (message.length === 0 || characters(message) > MAX_MESSAGE) {
      fail("INVALID_ARGUMENT", `message must have 1 to ${MAX_MESSAGE} characters`);
    }
    const scope = { tenant_id, workspace_id };
    const done = await find(ctx, scope, upload_id, token);
    if (done.status === "failed" && done.claim_token === token) {
      if (done.message === message) return fields(done); // the same call sent again
      claimLost(scope, done);
    }
    const upload = await held(ctx, scope, upload_id, token);
    await ctx.db.patch(upload._id, { status: "failed", message, updated_at: Date.now() });
    return fields((await ctx.db.get(upload._id))!);
  },
});

/**
 * Delete the chunks of staged uploads that were never committed (untouched for `older_than_ms`) or lost to another
 * creator of the same bytes, about `max_bytes` per call; call again while `done` is false.
 */
export const collectUploadGarbage = storeMutation({
  args: { tenant_id: v.string(), workspace_id: v.string(), older_than_ms: v.number(), max_bytes: v.optional(v.number()) },
  handler: async (ctx, args) => {
    checkScope(args.tenant_id, args.workspace_id);
    if (!(args.older_than_ms >= 0)) fail("INVALID_ARGUMENT", "older_than_ms must be a non-negative number");
    const budget = args.max_bytes ?? GC_PAGE_BYTES;
    checkCount(budget, "max_bytes", READ_BUDGET_BYTES / 2);
    const scope = { tenant_id: args.tenant_id, workspace_id: args.workspace_id };
    const cutoff = Date.now() - args.older_than_ms;
    const sets = await ctx.db
      .query("upload_chunk_sets")
      .withIndex("by_tenant_id_and_workspace_id_and_updated_at", (q) =>
        q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id),
      )
      .filter((q) => q.or(q.eq(q.field("state"), "garbage"), q.lte(q.field("updated_at"), cutoff)))
      .take(65);
    let deleted = 0;
    let bytes = 0;
    for (const set of sets.slice(0, 64)) {
      const doomed = [];
      let complete = true;
      for await (const chunk of chunksOf(ctx, scope, set.upload_id, set.generation)) {
        const size = JSON.stringify(chunk).length;
        if ((deleted > 0 || doomed.length > 0) && bytes + size > budget) {
          complete = false;
          break;
        }
        bytes += size;
        doomed.push(chunk._id);
      }
      for (const id of doomed) await ctx.db.delete(id);
      deleted += doomed.length;
      if (!complete) return { deleted, done: false };
      await ctx.db.delete(set._id);
    }
    return { deleted, done: sets.length <= 64 };
  },
});
