// OPTIMADE queries served where the data is: walk one index range of a workspace's structures and evaluate the
// rest of the filter (the port of evaluate.py, optimadeFilter.ts) on each record's entry document, inside the
// function, so that only matching summaries cross the network.
//
// As everywhere in convex/: built by layout.ts (never callable by a browser), tenant and workspace first in every index range, arguments
// checked beyond their validators, `ConvexError({code, message})` for expected failures.
import { compareValues, ConvexError, v, type Value } from "convex/values";
import type { Doc } from "./_generated/dataModel";
import type { QueryCtx } from "./_generated/server";
import { storeQuery } from "./layout";
import { checkQuery, entryDocument, matches, QueryError, type Query } from "./optimadeFilter";
import {
  checkId,
  checkScope,
  documentSize,
  fail,
  findRecord,
  READ_BUDGET_BYTES,
  toSummary,
  type Scope,
} from "./structures";
import limits from "./limits.json";

export const MAX_QUERY_PAGE = limits.protocol.maxQueryPage;
export const MAX_QUERY_ROWS_READ = limits.protocol.maxQueryRowsRead;
export const MAX_FILTER_CHARS = limits.protocol.maxQueryFilterChars;
// Documents a call may read: half of Convex's 32,000 per transaction (the element plan reads two per row).
const READ_BUDGET_DOCUMENTS = limits.convex.transactionReadDocuments / 2;
const MAX_BOUND_CHARS = 1024;
// A cursor carries the plan (bounds up to 1024 characters each) and the last value read, which may be a formula of
// a summary (at most 16 KiB, escaped in JSON text).
const MAX_CURSOR_CHARS = 72 * 1024;

type IndexName = "structure_id" | "updated_at" | "nsites" | "nelements" | "chemical_formula_reduced" | "element";

// Per plan index: the index of `structures` (or structure_elements) walked, the field ranged over (then structure
// id, which makes every position unique), and the type of its bounds.
const INDEXES: Record<IndexName, { table: "structures" | "structure_elements"; index: string; field: string | null; type: "number" | "string" }> = {
  structure_id: { table: "structures", index: "by_tenant_id_and_workspace_id_and_structure_id", field: null, type: "string" },
  updated_at: { table: "structures", index: "by_tenant_workspace_updated_at_structure", field: "updated_at", type: "number" },
  nsites: { table: "structures", index: "by_tenant_workspace_nsites_structure", field: "summary.nsites", type: "number" },
  nelements: { table: "structures", index: "by_tenant_workspace_nelements_structure", field: "summary.nelements", type: "number" },
  chemical_formula_reduced: {
    table: "structures",
    index: "by_tenant_workspace_formula_reduced_structure",
    field: "summary.chemical_formula_reduced",
    type: "string",
  },
  // Rows of one element, in structure id order; the bounds are on the structure id.
  element: { table: "structure_elements", index: "by_tenant_workspace_element_structure", field: null, type: "string" },
};

const bound = v.object({ value: v.union(v.number(), v.string()), inclusive: v.boolean() });
export const planValidator = v.object({
  index: v.union(
    v.literal("structure_id"),
    v.literal("updated_at"),
    v.literal("nsites"),
    v.literal("nelements"),
    v.literal("chemical_formula_reduced"),
    v.literal("element"),
  ),
  element: v.optional(v.string()),
  lower: v.optional(bound),
  upper: v.optional(bound),
  order: v.union(v.literal("asc"), v.literal("desc")),
});
type Plan = typeof planValidator.type;
type Bound = typeof bound.type;

/** A position in the walk: the ranged field's value (undefined: the record lacks it) and the structure id. */
type Position = { value: Value | undefined; structure_id: string };

function checkPlan(plan: Plan) {
  const spec = INDEXES[plan.index];
  if (plan.index === "element") {
    if (plan.element === undefined || plan.element.length === 0 || plan.element.length > 64) {
      fail("INVALID_ARGUMENT", 'plan.element (1 to 64 characters) is required with index "element"');
    }
  } else if (plan.element !== undefined) {
    fail("INVALID_ARGUMENT", 'plan.element is only for index "element"');
  }
  for (const [name, b] of [["lower", plan.lower], ["upper", plan.upper]] as const) {
    if (b === undefined) continue;
    if (typeof b.value !== spec.type) fail("INVALID_ARGUMENT", `plan.${name}.value must be a ${spec.type} for index ${plan.index}`);
    if (typeof b.value === "number" && !Number.isFinite(b.value)) fail("INVALID_ARGUMENT", `plan.${name}.value must be finite`);
    if (typeof b.value === "string" && b.value.length > MAX_BOUND_CHARS) {
      fail("INVALID_ARGUMENT", `plan.${name}.value is longer than ${MAX_BOUND_CHARS} characters`);
    }
  }
}

function checkFilter(filter: string | null): Query | null {
  if (filter === null) return null;
  if (filter.length > MAX_FILTER_CHARS) {
    fail("LIMIT_EXCEEDED", `the filter is ${filter.length} characters of JSON; the limit is ${MAX_FILTER_CHARS}`);
  }
  let query: unknown;
  try {
    query = JSON.parse(filter);
  } catch {
    fail("INVALID_ARGUMENT", "invalid filter: not JSON text");
  }
  try {
    checkQuery(query);
  } catch (error) {
    if (error instanceof QueryError) fail("INVALID_ARGUMENT", `invalid filter: ${error.message}`);
    throw error;
  }
  return query;
}

/** Whether `value` lies within the plan's bounds, in Convex's order of values. */
function withinBounds(value: Value | undefined, plan: Plan) {
  const lower = plan.lower;
  const upper = plan.upper;
  if (lower !== undefined) {
    const c = compareValues(value, lower.value);
    if (c < 0 || (c === 0 && !lower.inclusive)) return false;
  }
  if (upper !== undefined) {
    const c = compareValues(value, upper.value);
    if (c > 0 || (c === 0 && !upper.inclusive)) return false;
  }
  return true;
}

// A cursor is the JSON text of the plan it belongs to and the last position read (`null` for a missing value), or
// `end: true` once the range is exhausted. It is not secret: it names only what the caller asked for and a
// structure id of the caller's own workspace; a cursor of another plan, or malformed, is refused.
function planKey(plan: Plan) {
  const side = (b: Bound | undefined) => (b === undefined ? null : [b.value, b.inclusive]);
  return JSON.stringify([plan.index, plan.element ?? null, side(plan.lower), side(plan.upper), plan.order]);
}

function encodeCursor(plan: Plan, position: Position | "end") {
  if (position === "end") return JSON.stringify({ plan: planKey(plan), end: true });
  const value = INDEXES[plan.index].field === null || position.value === undefined ? null : position.value;
  return JSON.stringify({ plan: planKey(plan), after: [value, position.structure_id] });
}

function decodeCursor(cursor: string | null, plan: Plan): Position | "end" | null {
  if (cursor === null) return null;
  const bad = (why: string): never => fail("INVALID_ARGUMENT", `cursor: ${why}`);
  if (cursor.length > MAX_CURSOR_CHARS) bad("too long");
  let parsed: any;
  try {
    parsed = JSON.parse(cursor);
  } catch {
    bad("not a cursor of queryStructures");
  }
  if (typeof parsed !== "object" || parsed === null || parsed.plan !== planKey(plan)) {
    bad("it belongs to another plan (index, element, bounds and order must stay the same)");
  }
  if (parsed.end === true) return "end";
  const after = parsed.after;
  if (!Array.isArray(after) || after.length !== 2 || typeof after[1] !== "string") bad("malformed");
  const spec = INDEXES[plan.index];
  const structure_id: string = after[1];
  checkId(structure_id, "cursor structure_id");
  let value: Value | undefined;
  if (spec.field === null) {
    if (after[0] !== null) bad("malformed");
    value = structure_id;
  } else {
    value = after[0] === null ? undefined : after[0];
    if (value !== undefined && (typeof value !== spec.type || (typeof value === "number" && !Number.isFinite(value)))) {
      bad("malformed");
    }
  }
  if (!withinBounds(value, plan)) bad("outside the plan's bounds");
  return { value, structure_id };
}

/** The index ranges to walk, in order, to go through the plan's range from just after `after` (or its start). */
function segments(ctx: QueryCtx, scope: Scope, plan: Plan, after: Position | null) {
  const spec = INDEXES[plan.index];
  const asc = plan.order === "asc";
  const scoped = (q: any) => {
    const r = q.eq("tenant_id", scope.tenant_id).eq("workspace_id", scope.workspace_id);
    return plan.index === "element" ? r.eq("element", plan.element) : r;
  };
  // A range on `field` from the plan's bounds, with the side the walk comes from replaced by `from` (exclusive).
  const ranged = (q: any, field: string, from: Value | undefined | null) => {
    let lower: Bound | { value: Value | undefined; inclusive: boolean } | undefined = plan.lower;
    let upper: Bound | { value: Value | undefined; inclusive: boolean } | undefined = plan.upper;
    if (from !== null) {
      if (asc) lower = { value: from, inclusive: false };
      else upper = { value: from, inclusive: false };
    }
    let r = q;
    if (lower !== undefined) r = lower.inclusive ? r.gte(field, lower.value) : r.gt(field, lower.value);
    if (upper !== undefined) r = upper.inclusive ? r.lte(field, upper.value) : r.lt(field, upper.value);
    return r;
  };
  const walk = (range: (q: any) => any) =>
    (ctx.db.query(spec.table) as any).withIndex(spec.index, range).order(plan.order) as AsyncIterable<any>;
  if (spec.field === null) {
    return [walk((q) => ranged(scoped(q), "structure_id", after === null ? null : after.structure_id))];
  }
  const field = spec.field;
  if (after === null) return [walk((q) => ranged(scoped(q), field, null))];
  const parts = [
    // The rest of the records with the same value, then the values beyond it.
    walk((q) => {
      const same = scoped(q).eq(field, after.value);
      return asc ? same.gt("structure_id", after.structure_id) : same.lt("structure_id", after.structure_id);
    }),
  ];
  // Nothing sorts before a missing value: walking down from it, there is nothing left.
  if (asc || after.value !== undefined) parts.push(walk((q) => ranged(scoped(q), field, after.value)));
  return parts;
}

function positionOf(plan: Plan, record: Doc<"structures">): Position {
  const spec = INDEXES[plan.index];
  if (spec.field === null) return { value: record.structure_id, structure_id: record.structure_id };
  const value = spec.field === "updated_at" ? record.updated_at : (record.summary as Record<string, Value | undefined>)[spec.field.slice("summary.".length)];
  return { value, structure_id: record.structure_id };
}

/**
 * One step of an OPTIMADE query over a workspace's structures: walk the plan's index range from `cursor` (null:
 * its start), evaluate `filter` (the JSON text of a query of evaluate.py's language; null: everything matches) on
 * each record's entry document, and stop after `numItems` matches, `maximumRowsRead` rows (index entries), half of
 * a transaction's read budget, or the end of the range. Returns the matching records' summaries (as listStructures
 * gives them), in index order, the cursor right after each of them (`itemCursors`: a page cut after item k goes on from
 * `itemCursors[k]`), with `withStructures` their structure payloads (`structures`: the JSON text, `false` when
 * chunked, `null` when there is none), `rowsRead`, and `continueCursor`/`isDone`: call again with `continueCursor` until
 * enough matches are collected or `isDone` is true. A page may be short, even empty, with `isDone` false: a
 * selective filter ends a call at its read budget instead of failing.
 *
 * Plans: `structure_id`, `updated_at`, `nsites`, `nelements`, `chemical_formula_reduced` walk `structures` by that
 * value (bounds `lower`/`upper` on it), then by structure id; `element` walks the records that have
 * `plan.element` (structure_elements) by structure id (bounds on the structure id) and reads each record.
 * Records lacking the ranged property come first in ascending order (last in descending) unless a bound excludes
 * them. The filter is always evaluated in full: the plan only chooses what is read, never what matches.
 */
export const queryStructures = storeQuery({
  args: {
    tenant_id: v.string(),
    workspace_id: v.string(),
    plan: planValidator,
    filter: v.union(v.string(), v.null()),
    cursor: v.union(v.string(), v.null()),
    numItems: v.number(),
    maximumRowsRead: v.optional(v.number()),
    withStructures: v.optional(v.boolean()),
  },
  handler: async (ctx, args) => {
    const { tenant_id, workspace_id, plan } = args;
    checkScope(tenant_id, workspace_id);
    checkPlan(plan);
    for (const [name, value, max] of [
      ["numItems", args.numItems, MAX_QUERY_PAGE],
      ["maximumRowsRead", args.maximumRowsRead ?? MAX_QUERY_ROWS_READ, MAX_QUERY_ROWS_READ],
    ] as const) {
      if (!Number.isInteger(value) || value < 1 || value > max) {
        fail("INVALID_ARGUMENT", `${name} must be an integer from 1 to ${max}, got ${value}`);
      }
    }
    const maxRows = args.maximumRowsRead ?? MAX_QUERY_ROWS_READ;
    const query = checkFilter(args.filter);
    const start = decodeCursor(args.cursor, plan);
    const done = { page: [], itemCursors: [], continueCursor: encodeCursor(plan, "end"), isDone: true, rowsRead: 0 };
    if (start === "end") return args.withStructures ? { ...done, structures: [] } : done;
    const scope = { tenant_id, workspace_id };
    const page = [];
    const itemCursors: string[] = [];
    const structures: (string | null | false)[] = [];
    let rowsRead = 0;
    let bytes = 0;
    let documents = 0;
    let last: Position | null = start;
    for (const segment of segments(ctx, scope, plan, start)) {
      for await (const row of segment) {
        rowsRead += 1;
        documents += 1;
        bytes += documentSize(row);
        let record: Doc<"structures"> | null = row;
        if (plan.index === "element") {
          last = { value: row.structure_id, structure_id: row.structure_id };
          record = await findRecord(ctx, scope, row.structure_id);
          documents += 1;
          if (record !== null) bytes += documentSize(record);
        } else {
          last = positionOf(plan, row);
        }
        if (record !== null && (query === null || matches(query, entryDocument(record)))) {
          page.push(toSummary(record));
          itemCursors.push(encodeCursor(plan, positionOf(plan, record)));
          // The payload's JSON text; false when it is chunked (read it with getStructure), null when there is none.
          if (args.withStructures) structures.push(record.structure ?? (record.parts.some((p) => p.name === "structure") ? false : null));
        }
        if (page.length >= args.numItems || rowsRead >= maxRows || bytes >= READ_BUDGET_BYTES || documents + 2 > READ_BUDGET_DOCUMENTS) {
          const reply = { page, itemCursors, continueCursor: encodeCursor(plan, last), isDone: false, rowsRead };
          return args.withStructures ? { ...reply, structures } : reply;
        }
      }
    }
    const reply = { page, itemCursors, continueCursor: encodeCursor(plan, "end"), isDone: true, rowsRead };
    return args.withStructures ? { ...reply, structures } : reply;
  },
});
