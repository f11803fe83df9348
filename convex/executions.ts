// Convex functions of the execution records: the state of AiiDA processes beside the structures.
//
// As in structures.ts, every function is built by layout.ts (never callable by a browser), takes tenant and
// workspace and uses both in every index range, checks its arguments beyond the validators, and throws
// `ConvexError({code, message})` for expected failures. Each stays within half of a transaction's limits, by bytes
// and by documents: `putExecutions` defers the records it has no budget left for (the client sends them again),
// listings stop at a byte budget. docs/executions.md describes the records.
import { ConvexError, v } from "convex/values";
import { paginationOptsValidator } from "convex/server";
import type { Doc } from "./_generated/dataModel";
import type { MutationCtx, QueryCtx } from "./_generated/server";
import { storeMutation, storeQuery } from "./layout";
import { executionFields } from "./schema";
import limits from "./limits.json";

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const NAME_PATTERN = /^[A-Za-z0-9_.:+-]{1,255}$/;
const JOB_ID_PATTERN = /^[A-Za-z0-9_.:\[\]-]{1,128}$/;
// Structure ids per role a record may carry, records per call, and structure links (taken plus produced) per call.
export const MAX_STRUCTURES = limits.protocol.maxExecutionStructures;
export const MAX_RECORDS = limits.protocol.maxExecutionsPerCall;
export const MAX_LINKS = limits.protocol.maxExecutionLinksPerCall;
const MAX_TEXT = limits.protocol.maxExecutionTextChars;
const MAX_HASH_IDS = limits.protocol.maxHashIds;
// Half of a transaction's read bytes and written documents, as in structures.ts.
const READ_BUDGET_BYTES = limits.convex.transactionReadBytes / 2;
const DOCUMENT_BUDGET = limits.convex.transactionWriteDocuments / 2;
// A record whose old and new links are both at the maximum writes 1 + 2 * 2 * MAX_STRUCTURES documents; putExecutions
// starts a record only while that much budget is left.
const RECORD_WORST_WRITES = 1 + 4 * MAX_STRUCTURES;
// Records per page of a listing by structure (each link is followed by a read of its record).
export const MAX_STRUCTURE_PAGE = 100;

type Code = "INVALID_ARGUMENT" | "LIMIT_EXCEEDED";
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

function checkUuid(value: string, what: string) {
  if (!UUID_PATTERN.test(value)) fail("INVALID_ARGUMENT", `${what} ${JSON.stringify(value.slice(0, 60))} is not a UUID`);
}

function checkText(value: string | null, what: string, max = 255) {
  if (value === null) return;
  if (value.length === 0 || value.length > max) fail("INVALID_ARGUMENT", `${what} must have 1 to ${max} characters`);
  // Control and bidirectional-override characters: never shown to people (the Python side refuses them too).
  if (/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(value)) {
    fail("INVALID_ARGUMENT", `${what} contains a control or formatting character`);
  }
}

function checkPage(numItems: number, max: number) {
  if (!Number.isInteger(numItems) || numItems < 1 || numItems > max) {
    fail("INVALID_ARGUMENT", `numItems must be an integer from 1 to ${max}, got ${numItems}`);
  }
}

/** Approximate size of a document as Convex counts it (its JSON text). */
function documentSize(doc: object): number {
  return JSON.stringify(doc).length;
}

// The written fields use the table's own validators, so the two cannot drift apart.
const f = executionFields;
const recordArg = v.object({
  process_uuid: f.process_uuid,
  process_label: f.process_label,
  process_type: f.process_type,
  kind: f.kind,
  state: f.state,
  exit_status: f.exit_status,
  exit_message: f.exit_message,
  computer: f.computer,
  hostname: f.hostname,
  scheduler: f.scheduler,
  parent_uuid: f.parent_uuid,
  structures_in: f.structures_in,
  structures_out: f.structures_out,
  structures_truncated: f.structures_truncated,
  created_at: f.created_at,
  modified_at: f.modified_at,
  content_hash: f.content_hash,
});

type RecordArg = typeof recordArg.type;

function checkRecord(record: RecordArg) {
  checkUuid(record.process_uuid, "process_uuid");
  if (record.parent_uuid !== null) checkUuid(record.parent_uuid, "parent_uuid");
  if (!SHA256_PATTERN.test(record.content_hash)) fail("INVALID_ARGUMENT", "content_hash is not a sha256 hex digest");
  checkText(record.process_label, "process_label");
  checkText(record.process_type, "process_type");
  checkText(record.computer, "computer");
  checkText(record.hostname, "hostname");
  checkText(record.exit_message === null ? null : record.exit_message.replace(/[\n\t]/g, " "), "exit_message", MAX_TEXT);
  if (record.exit_status !== null && !Number.isInteger(record.exit_status)) {
    fail("INVALID_ARGUMENT", `exit_status must be an integer, got ${record.exit_status}`);
  }
  if (record.scheduler !== null) {
    const { type, job_id, state } = record.scheduler;
    if (!NAME_PATTERN.test(type)) fail("INVALID_ARGUMENT", "scheduler type is not a valid name");
    if (state !== null && !NAME_PATTERN.test(state)) fail("INVALID_ARGUMENT", "scheduler state is not a valid name");
    if (job_id !== null && !JOB_ID_PATTERN.test(job_id)) fail("INVALID_ARGUMENT", "scheduler job id is not valid");
  }
  for (const name of ["created_at", "modified_at"] as const) {
    if (!Number.isFinite(record[name]) || record[name] < 0) fail("INVALID_ARGUMENT", `${name} must be a time in milliseconds`);
  }
  for (const name of ["structures_in", "structures_out"] as const) {
    const ids = record[name];
    if (ids.length > MAX_STRUCTURES) {
      fail("LIMIT_EXCEEDED", `${name} has ${ids.length} structure ids; the limit is ${MAX_STRUCTURES}`);
    }
    ids.forEach((id) => checkId(id, `${name} entry`));
    if (new Set(ids).size !== ids.length) fail("INVALID_ARGUMENT", `${name} names a structure twice`);
  }
}

async function findExecution(ctx: QueryCtx, scope: Scope, process_uuid: string) {
  return await ctx.db
    .query("executions")
    .withIndex("by_tenant_id_and_workspace_id_and_process_uuid", (q) =>
      q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id).eq("process_uuid", process_uuid),
    )
    .unique();
}

function linksOf(ctx: QueryCtx, scope: Scope, process_uuid: string) {
  return ctx.db
    .query("execution_structures")
    .withIndex("by_tenant_id_and_workspace_id_and_process_uuid", (q) =>
      q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id).eq("process_uuid", process_uuid),
    );
}

function wantedLinks(record: { structures_in: string[]; structures_out: string[] }) {
  const roles = new Map<string, "input" | "output" | "both">();
  for (const id of record.structures_in) roles.set(id, "input");
  for (const id of record.structures_out) roles.set(id, roles.has(id) ? "both" : "output");
  return roles;
}

/** Bring the links of one process in line with `wanted`; returns the documents written and the bytes read. */
async function syncLinks(
  ctx: MutationCtx,
  scope: Scope,
  process_uuid: string,
  wanted: Map<string, "input" | "output" | "both">,
  modified_at: number,
) {
  let written = 0;
  let read = 0;
  const remaining = new Map(wanted);
  for (const link of await linksOf(ctx, scope, process_uuid).collect()) {
    read += documentSize(link);
    const role = remaining.get(link.structure_id);
    remaining.delete(link.structure_id);
    if (role === undefined) {
      await ctx.db.delete(link._id);
      written += 1;
    } else if (link.role !== role || link.modified_at !== modified_at) {
      await ctx.db.patch(link._id, { role, modified_at });
      written += 1;
    }
  }
  for (const [structure_id, role] of remaining) {
    await ctx.db.insert("execution_structures", { ...scope, structure_id, process_uuid, role, modified_at });
    written += 1;
  }
  return { written, read };
}

/**
 * Upsert execution records. Per record: `unchanged` (same content hash), `stale` (the committed record is of a later
 * `modified_at`, and is kept), `created`/`updated`; `deferred` when the call ran out of its write budget before the
 * record (nothing of it was written: send it again). Links to structures are kept in line with the record.
 * Idempotent: a retried call finds the same hashes and reports `unchanged`.
 */
export const putExecutions = storeMutation({
  args: { tenant_id: v.string(), workspace_id: v.string(), records: v.array(recordArg) },
  handler: async (ctx, { tenant_id, workspace_id, records }) => {
    checkScope(tenant_id, workspace_id);
    if (records.length > MAX_RECORDS) fail("LIMIT_EXCEEDED", `at most ${MAX_RECORDS} records per call`);
    const links = records.reduce((n, r) => n + r.structures_in.length + r.structures_out.length, 0);
    if (links > MAX_LINKS) fail("LIMIT_EXCEEDED", `${links} structure links in one call; the limit is ${MAX_LINKS}`);
    const seen = new Set<string>();
    for (const record of records) {
      checkRecord(record);
      if (seen.has(record.process_uuid)) fail("INVALID_ARGUMENT", `process ${record.process_uuid} appears twice`);
      seen.add(record.process_uuid);
    }
    const scope = { tenant_id, workspace_id };
    const results: { process_uuid: string; status: string }[] = [];
    let written = 0;
    let read = 0;
    for (const record of records) {
      if (written + RECORD_WORST_WRITES > DOCUMENT_BUDGET || read > READ_BUDGET_BYTES / 2) {
        results.push({ process_uuid: record.process_uuid, status: "deferred" });
        continue;
      }
      const existing = await findExecution(ctx, scope, record.process_uuid);
      if (existing !== null) read += documentSize(existing);
      if (existing !== null && existing.content_hash === record.content_hash) {
        results.push({ process_uuid: record.process_uuid, status: "unchanged" });
        continue;
      }
      if (existing !== null && existing.modified_at > record.modified_at) {
        results.push({ process_uuid: record.process_uuid, status: "stale" });
        continue;
      }
      const links = await syncLinks(ctx, scope, record.process_uuid, wantedLinks(record), record.modified_at);
      written += links.written;
      read += links.read;
      const document = { ...scope, ...record, updated_at: Date.now() };
      if (existing === null) await ctx.db.insert("executions", document);
      else await ctx.db.replace(existing._id, document);
      written += 1;
      results.push({ process_uuid: record.process_uuid, status: existing === null ? "created" : "updated" });
    }
    return results;
  },
});

function fields(record: Doc<"executions">) {
  const { _id, _creationTime, ...rest } = record;
  return rest;
}

/** One execution record, or null. */
export const getExecution = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), process_uuid: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, process_uuid }) => {
    checkScope(tenant_id, workspace_id);
    checkUuid(process_uuid, "process_uuid");
    const record = await findExecution(ctx, { tenant_id, workspace_id }, process_uuid);
    return record === null ? null : fields(record);
  },
});

/**
 * One page of a workspace's execution records, most recently modified first ("recently changed"); `modified_min`
 * (inclusive, milliseconds) restricts it to a range of the index. The page stops at the read budget.
 */
export const listExecutions = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    paginationOpts: paginationOptsValidator,
    modified_min: v.optional(v.number()),
  },
  handler: async (ctx, { tenant_id, workspace_id, paginationOpts, modified_min }) => {
    checkScope(tenant_id, workspace_id);
    checkPage(paginationOpts.numItems, limits.protocol.maxListPage);
    if (modified_min !== undefined && !Number.isFinite(modified_min)) {
      fail("INVALID_ARGUMENT", "modified_min must be a finite number");
    }
    const page = await ctx.db
      .query("executions")
      .withIndex("by_tenant_id_and_workspace_id_and_modified_at", (q) => {
        const scoped = q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id);
        return modified_min === undefined ? scoped : scoped.gte("modified_at", modified_min);
      })
      .order("desc")
      .paginate({ ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES });
    return { page: page.page.map(fields), isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/**
 * One page of the execution records of the processes that took or produced `structure_id` ("executions of this
 * structure"), most recently modified first, each with its `role` (`input`, `output` or `both`).
 */
export const listExecutionsOfStructure = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    paginationOpts: paginationOptsValidator,
    modified_min: v.optional(v.number()),
  },
  handler: async (ctx, { tenant_id, workspace_id, structure_id, paginationOpts, modified_min }) => {
    checkScope(tenant_id, workspace_id);
    checkId(structure_id, "structure_id");
    checkPage(paginationOpts.numItems, MAX_STRUCTURE_PAGE);
    if (modified_min !== undefined && !Number.isFinite(modified_min)) {
      fail("INVALID_ARGUMENT", "modified_min must be a finite number");
    }
    const scope = { tenant_id, workspace_id };
    // Links are small (about 200 bytes); the records they lead to are at most about 45 KB each, so a page of 100
    // reads well under the budget.
    const page = await ctx.db
      .query("execution_structures")
      .withIndex("by_tenant_id_and_workspace_id_and_structure_id_and_modified_at", (q) => {
        const scoped = q.eq("tenant_id", tenant_id).eq("workspace_id", workspace_id).eq("structure_id", structure_id);
        return modified_min === undefined ? scoped : scoped.gte("modified_at", modified_min);
      })
      .order("desc")
      .paginate({ ...paginationOpts, maximumBytesRead: READ_BUDGET_BYTES / 4 });
    const records = [];
    for (const link of page.page) {
      const record = await findExecution(ctx, scope, link.process_uuid);
      if (record !== null) records.push({ ...fields(record), role: link.role });
    }
    return { page: records, isDone: page.isDone, continueCursor: page.continueCursor };
  },
});

/** `content_hash` and `modified_at` of each of `process_uuids` that has a record. */
export const executionHashes = storeQuery({
  args: { tenant_id: v.string(), workspace_id: v.string(), process_uuids: v.array(v.string()) },
  handler: async (ctx, { tenant_id, workspace_id, process_uuids }) => {
    checkScope(tenant_id, workspace_id);
    if (process_uuids.length > MAX_HASH_IDS) fail("LIMIT_EXCEEDED", `at most ${MAX_HASH_IDS} process_uuids per call`);
    const found = [];
    for (const process_uuid of process_uuids) {
      checkUuid(process_uuid, "process_uuid");
      const record = await findExecution(ctx, { tenant_id, workspace_id }, process_uuid);
      if (record !== null) found.push({ process_uuid, content_hash: record.content_hash, modified_at: record.modified_at });
    }
    return found;
  },
});

/** Delete an execution record and its structure links. */
export const removeExecution = storeMutation({
  args: { tenant_id: v.string(), workspace_id: v.string(), process_uuid: v.string() },
  handler: async (ctx, { tenant_id, workspace_id, process_uuid }) => {
    checkScope(tenant_id, workspace_id);
    checkUuid(process_uuid, "process_uuid");
    const scope = { tenant_id, workspace_id };
    const record = await findExecution(ctx, scope, process_uuid);
    if (record === null) return { existed: false };
    // At most 2 * MAX_STRUCTURES links: well within a mutation's budget.
    for (const link of await linksOf(ctx, scope, process_uuid).collect()) await ctx.db.delete(link._id);
    await ctx.db.delete(record._id);
    return { existed: true };
  },
});
