import { convexTest } from "convex-test";
import { describe, expect, test } from "vitest";
import { compareValues, type Value } from "convex/values";
import { internal } from "./_generated/api";
import schema from "./schema";
import limits from "./limits.json";
// Read as text: the file nests deeper than Vite's JSON import allows.
import casesText from "./testdata/filter_cases.json?raw";

const modules = import.meta.glob("./**/*.ts");
const scope = { tenant_id: "t1", workspace_id: "w1" };

function setup() {
  return convexTest({ schema, modules, transactionLimits: true });
}
type T = ReturnType<typeof setup>;
type Summary = Record<string, unknown>;

let counter = 0;
function record(structure_id: string, summary: Summary, overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    structure_id,
    generation: `g${counter}`,
    content_hash: counter.toString(16).padStart(64, "0"),
    source: { kind: "cif", filename: `${structure_id}.cif` },
    summary,
    node_uuid: null,
    cif: null,
    structure: null,
    params: null,
    parts: [],
    chunks: [],
    ...overrides,
  };
}

async function put(t: T, records: ReturnType<typeof record>[], where = scope) {
  return await t.mutation(internal.structures.putBatch, { ...where, records });
}

type Plan = {
  index: "structure_id" | "updated_at" | "nsites" | "nelements" | "chemical_formula_reduced" | "element";
  element?: string;
  lower?: { value: number | string; inclusive: boolean };
  upper?: { value: number | string; inclusive: boolean };
  order: "asc" | "desc";
};
type Result = { page: { structure_id: string }[]; continueCursor: string; isDone: boolean; rowsRead: number };

async function query(t: T, plan: Plan, options: { filter?: unknown; cursor?: string | null; numItems?: number; maximumRowsRead?: number; where?: typeof scope } = {}) {
  return (await t.query(internal.optimade.queryStructures, {
    ...(options.where ?? scope),
    plan,
    filter: options.filter === undefined || options.filter === null ? null : JSON.stringify(options.filter),
    cursor: options.cursor ?? null,
    numItems: options.numItems ?? 200,
    ...(options.maximumRowsRead === undefined ? {} : { maximumRowsRead: options.maximumRowsRead }),
  })) as Result;
}

/** Every match of a plan and filter, calling again with the cursor until done. */
async function walk(t: T, plan: Plan, options: { filter?: unknown; numItems?: number; maximumRowsRead?: number; where?: typeof scope } = {}) {
  const ids: string[] = [];
  const rowsRead: number[] = [];
  let cursor: string | null = null;
  for (let calls = 0; calls < 1000; calls++) {
    const result: Result = await query(t, plan, { ...options, cursor });
    expect(result.page.length).toBeLessThanOrEqual(options.numItems ?? 200);
    ids.push(...result.page.map((s) => s.structure_id));
    rowsRead.push(result.rowsRead);
    if (result.isDone) return { ids, rowsRead };
    cursor = result.continueCursor;
  }
  throw new Error("the walk did not end");
}

async function allRecords(t: T, where = scope) {
  return await t.run(async (ctx) =>
    (await ctx.db.query("structures").collect()).filter(
      (r) => r.tenant_id === where.tenant_id && r.workspace_id === where.workspace_id,
    ),
  );
}

/** The ids of the scope's records in the order of `field` (missing first), then id; within the plan's bounds. */
async function expectedOrder(t: T, plan: Plan, field: string | null, keep: (summary: Summary, id: string) => boolean = () => true) {
  const records = await allRecords(t);
  const keyOf = (r: (typeof records)[number]): Value | undefined =>
    field === null ? r.structure_id : field === "updated_at" ? r.updated_at : (r.summary as Summary)[field] as Value | undefined;
  const inBounds = (value: Value | undefined) => {
    if (plan.lower) {
      const c = compareValues(value, plan.lower.value);
      if (c < 0 || (c === 0 && !plan.lower.inclusive)) return false;
    }
    if (plan.upper) {
      const c = compareValues(value, plan.upper.value);
      if (c > 0 || (c === 0 && !plan.upper.inclusive)) return false;
    }
    return true;
  };
  const sorted = records
    .filter((r) => inBounds(keyOf(r)) && keep(r.summary as Summary, r.structure_id))
    .sort((a, b) => compareValues(keyOf(a), keyOf(b)) || compareValues(a.structure_id, b.structure_id));
  const ids = sorted.map((r) => r.structure_id);
  return plan.order === "asc" ? ids : ids.reverse();
}

async function elementRows(t: T) {
  const rows = await t.run(async (ctx) => await ctx.db.query("structure_elements").collect());
  return rows.map((r) => `${r.tenant_id}/${r.workspace_id}/${r.structure_id}/${r.element}`).sort();
}

async function rowsFromRecords(t: T) {
  const records = await t.run(async (ctx) => await ctx.db.query("structures").collect());
  return records
    .flatMap((r) => [...new Set((r.summary.elements ?? []) as string[])].map((e) => `${r.tenant_id}/${r.workspace_id}/${r.structure_id}/${e}`))
    .sort();
}

async function expectCode(promise: Promise<unknown>, code: string, message?: RegExp) {
  try {
    await promise;
  } catch (error) {
    const data = (error as { data?: { code?: string; message?: string } }).data;
    expect(data?.code).toBe(code);
    if (message) expect(data?.message).toMatch(message);
    return;
  }
  throw new Error(`expected a ConvexError with code ${code}`);
}

// A varied workspace: some records lack nsites or the formula, several share values.
const WORKSPACE: [string, Summary][] = [
  ["si", { elements: ["Si"], nelements: 1, nsites: 2, chemical_formula_reduced: "Si" }],
  ["si-scf", { elements: ["Si"], nelements: 1, nsites: 2, chemical_formula_reduced: "Si" }],
  ["fe2o3", { elements: ["Fe", "O"], nelements: 2, nsites: 30, chemical_formula_reduced: "Fe2O3" }],
  ["fe2o3-bands", { elements: ["Fe", "O"], nelements: 2, nsites: 30, chemical_formula_reduced: "Fe2O3" }],
  ["feo", { elements: ["Fe", "O"], nelements: 2, nsites: 8, chemical_formula_reduced: "FeO" }],
  ["nacl", { elements: ["Cl", "Na"], nelements: 2, nsites: 8, chemical_formula_reduced: "ClNa" }],
  ["bare", {}],
  ["alloy", { elements: ["Al", "Fe", "Ni"], nelements: 3, chemical_formula_reduced: "AlFeNi" }],
  ["nothing-but-sites", { nsites: 1 }],
  ["sio2", { elements: ["O", "Si"], nelements: 2, nsites: 9, chemical_formula_reduced: "O2Si" }],
];

async function workspace(t: T) {
  await put(t, WORKSPACE.slice(0, 5).map(([id, summary]) => record(id, summary)));
  await put(t, WORKSPACE.slice(5).map(([id, summary]) => record(id, summary)));
}

describe("structure_elements", () => {
  test("equals the records' elements through put, replace, unchanged, conflict and delete", async () => {
    const t = setup();
    await workspace(t);
    expect(await elementRows(t)).toEqual(await rowsFromRecords(t));
    expect((await elementRows(t)).length).toBe(15);
    // Replace: other elements, duplicates, none at all; an equal write is unchanged.
    const results = await put(t, [
      record("si", { elements: ["Si", "Ge", "Ge"], nelements: 2 }),
      record("fe2o3", {}),
      record("bare", { elements: ["H"] }),
    ]);
    expect(results.map((r: { status: string }) => r.status)).toEqual(["updated", "updated", "updated"]);
    expect(await elementRows(t)).toEqual(await rowsFromRecords(t));
    const again = record("bare", { elements: ["H"] }, { content_hash: (await allRecords(t)).find((r) => r.structure_id === "bare")!.content_hash });
    expect((await put(t, [again]))[0].status).toBe("unchanged");
    // A record of another node is not replaced (nor its rows) unless asked to.
    const uuid = "0b6f8e4e-1b59-4a53-9a55-3c7e7f0e5a11";
    expect((await put(t, [record("feo", { elements: ["Xe"] }, { node_uuid: uuid })]))[0].status).toBe("conflict");
    expect(await elementRows(t)).toEqual(await rowsFromRecords(t));
    const replaced = await t.mutation(internal.structures.putBatch, {
      ...scope,
      records: [record("feo", { elements: ["Xe"] }, { node_uuid: uuid })],
      replace_owner: true,
    });
    expect(replaced[0].status).toBe("updated");
    expect(await elementRows(t)).toEqual(await rowsFromRecords(t));
    expect(await elementRows(t)).toContain("t1/w1/feo/Xe");
    for (const id of ["si", "alloy", "missing"]) {
      await t.mutation(internal.structures.removeStructure, { ...scope, structure_id: id });
    }
    expect(await elementRows(t)).toEqual(await rowsFromRecords(t));
    expect((await elementRows(t)).some((row) => row.includes("/si/") || row.includes("/alloy/"))).toBe(false);
  });

  test("syncStructureElements repairs a table that drifted (records committed before it existed)", async () => {
    const t = setup();
    await workspace(t);
    const expected = await rowsFromRecords(t);
    await t.run(async (ctx) => {
      const rows = await ctx.db.query("structure_elements").collect();
      for (const row of rows.filter((r) => r.structure_id !== "si").slice(0, 9)) await ctx.db.delete(row._id);
      await ctx.db.insert("structure_elements", { ...scope, element: "Xx", structure_id: "si" });
      await ctx.db.insert("structure_elements", { ...scope, element: "Si", structure_id: "si" });
    });
    expect(await elementRows(t)).not.toEqual(expected);
    let cursor: string | null = null;
    let written = 0;
    for (;;) {
      const r: { written: number; isDone: boolean; continueCursor: string } = await t.mutation(
        internal.structures.syncStructureElements,
        { ...scope, paginationOpts: { numItems: 3, cursor } },
      );
      written += r.written;
      if (r.isDone) break;
      cursor = r.continueCursor;
    }
    expect(await elementRows(t)).toEqual(expected);
    expect(written).toBe(9 + 2);
  });

  test("a batch naming too many elements is refused before anything is written", async () => {
    const t = setup();
    const many = Array.from({ length: 41 }, (_, i) => `E${i}`);
    const records = Array.from({ length: 100 }, (_, i) => record(`s${i}`, { elements: many }));
    expect(100 * 41).toBeGreaterThan(limits.protocol.maxBatchElements);
    await expectCode(put(t, records), "LIMIT_EXCEEDED", /elements together/);
    expect(await elementRows(t)).toEqual([]);
  });
});

describe("queryStructures plans", () => {
  const FIELDS: [Plan["index"], string | null][] = [
    ["structure_id", null],
    ["updated_at", "updated_at"],
    ["nsites", "nsites"],
    ["nelements", "nelements"],
    ["chemical_formula_reduced", "chemical_formula_reduced"],
  ];

  test.each(FIELDS)("%s: whole range in order, both ways, one record per call and all at once", async (index, field) => {
    const t = setup();
    await workspace(t);
    for (const order of ["asc", "desc"] as const) {
      const plan = { index, order };
      const expected = await expectedOrder(t, plan, field);
      expect(expected.length).toBe(WORKSPACE.length);
      expect((await walk(t, plan)).ids).toEqual(expected);
      const one = await walk(t, plan, { numItems: 1 });
      expect(one.ids).toEqual(expected);
      expect(one.rowsRead.every((n) => n <= 1)).toBe(true);
    }
  });

  test.each([
    ["nsites", "nsites", { value: 2, inclusive: true }, { value: 30, inclusive: false }],
    ["nsites", "nsites", { value: 2, inclusive: false }, undefined],
    ["nsites", "nsites", undefined, { value: 8, inclusive: true }],
    ["nelements", "nelements", { value: 2, inclusive: true }, { value: 2, inclusive: true }],
    ["chemical_formula_reduced", "chemical_formula_reduced", { value: "Fe", inclusive: true }, { value: "Si", inclusive: false }],
    ["structure_id", null, { value: "fe2o3", inclusive: false }, { value: "si", inclusive: true }],
    ["updated_at", "updated_at", { value: 0, inclusive: true }, { value: 8.64e15, inclusive: true }],
  ] as const)("%s between %j and %j", async (index, field, lower, upper) => {
    const t = setup();
    await workspace(t);
    for (const order of ["asc", "desc"] as const) {
      const plan: Plan = { index, order, ...(lower ? { lower } : {}), ...(upper ? { upper } : {}) };
      const expected = await expectedOrder(t, plan, field);
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThanOrEqual(WORKSPACE.length);
      expect((await walk(t, plan, { numItems: 2 })).ids).toEqual(expected);
    }
  });

  test("a long formula still resumes from its cursor", async () => {
    const t = setup();
    const long = "Fe".repeat(6000);
    await put(t, ["a", "b", "c"].map((id) => record(id, { chemical_formula_reduced: long })));
    const walked = await walk(t, { index: "chemical_formula_reduced", order: "desc" }, { numItems: 1 });
    expect(walked.ids).toEqual(["c", "b", "a"]);
  });

  test("records without the property come first ascending, last descending, unless a lower bound excludes them", async () => {
    const t = setup();
    await workspace(t);
    const asc = (await walk(t, { index: "nsites", order: "asc" }, { numItems: 1 })).ids;
    expect(asc.slice(0, 2)).toEqual(["alloy", "bare"]);
    const desc = (await walk(t, { index: "nsites", order: "desc" }, { numItems: 1 })).ids;
    expect(desc.slice(-2)).toEqual(["bare", "alloy"]);
    const bounded = (await walk(t, { index: "nsites", order: "asc", lower: { value: 0, inclusive: true } })).ids;
    expect(bounded).not.toContain("bare");
  });

  test("element: the records that have the element, by structure id, read from their own documents", async () => {
    const t = setup();
    await workspace(t);
    const plan: Plan = { index: "element", element: "Fe", order: "asc" };
    expect((await walk(t, plan, { numItems: 1 })).ids).toEqual(["alloy", "fe2o3", "fe2o3-bands", "feo"]);
    expect((await walk(t, { ...plan, order: "desc" })).ids).toEqual(["feo", "fe2o3-bands", "fe2o3", "alloy"]);
    const bounded = { ...plan, lower: { value: "alloy", inclusive: false }, upper: { value: "feo", inclusive: false } };
    expect((await walk(t, bounded)).ids).toEqual(["fe2o3", "fe2o3-bands"]);
    expect((await walk(t, { ...plan, element: "Xe" })).ids).toEqual([]);
    const page = await query(t, plan, { filter: { nsites: { $gt: 10 } } });
    expect(page.page.map((s) => s.structure_id)).toEqual(["fe2o3", "fe2o3-bands"]);
    // The documents are listStructures' summaries.
    const listed = await t.query(internal.structures.listStructures, { ...scope, paginationOpts: { numItems: 200, cursor: null } });
    expect(page.page[0]).toEqual(listed.page.find((s: { structure_id: string }) => s.structure_id === "fe2o3"));
    // A replaced record leaves the element's range at once.
    await put(t, [record("feo", { elements: ["O"] })]);
    expect((await walk(t, plan)).ids).toEqual(["alloy", "fe2o3", "fe2o3-bands"]);
  });
});

describe("queryStructures with a residual filter", () => {
  test("pages across many calls without duplicates or gaps, each call within its row budget", async () => {
    const t = setup();
    const records = Array.from({ length: 90 }, (_, i) =>
      record(`s${String(i).padStart(3, "0")}`, { nsites: i % 13, elements: i % 7 === 0 ? ["Fe"] : ["Si"], chemical_formula_reduced: i % 7 === 0 ? "Fe" : "Si" }),
    );
    await put(t, records.slice(0, 45));
    await put(t, records.slice(45));
    const filter = { $and: [{ elements: { $contains: "F" } }, { nsites: { $gte: 1 } }] };
    const matching = (s: Summary) => (s.elements as string[]).includes("Fe") && (s.nsites as number) >= 1;
    for (const index of ["structure_id", "nsites", "updated_at"] as const) {
      for (const order of ["asc", "desc"] as const) {
        const plan = { index, order };
        const expected = await expectedOrder(t, plan, index === "structure_id" ? null : index, matching);
        expect(expected.length).toBe(12);
        const { ids, rowsRead } = await walk(t, plan, { filter, numItems: 3, maximumRowsRead: 10 });
        expect(ids).toEqual(expected);
        expect(new Set(ids).size).toBe(ids.length);
        expect(Math.max(...rowsRead)).toBeLessThanOrEqual(10);
        expect(rowsRead.reduce((a, b) => a + b, 0)).toBe(90); // every row read exactly once
        expect(rowsRead.length).toBeGreaterThan(9); // a selective filter ends calls at the row budget
      }
    }
  });

  test("a page ends at numItems matches; the next call resumes right after the last row read", async () => {
    const t = setup();
    await workspace(t);
    const plan: Plan = { index: "structure_id", order: "asc" };
    const filter = { elements: "O" };
    const first = await query(t, plan, { filter, numItems: 2 });
    expect(first.page.map((s) => s.structure_id)).toEqual(["fe2o3", "fe2o3-bands"]);
    expect(first.isDone).toBe(false);
    expect(first.rowsRead).toBe(4); // alloy, bare, fe2o3, fe2o3-bands
    const second = await query(t, plan, { filter, numItems: 2, cursor: first.continueCursor });
    expect(second.page.map((s) => s.structure_id)).toEqual(["feo", "sio2"]);
    const third = await query(t, plan, { filter, numItems: 2, cursor: second.continueCursor });
    expect(third.page).toEqual([]);
    expect(third.isDone).toBe(true);
    const after = await query(t, plan, { filter, cursor: third.continueCursor });
    expect([after.page, after.isDone, after.rowsRead]).toEqual([[], true, 0]);
  });

  test("each item's cursor resumes right after it; withStructures gives each item's payload text", async () => {
    const t = setup();
    await workspace(t);
    for (const plan of [
      { index: "structure_id", order: "asc" },
      { index: "nsites", order: "desc" },
      { index: "element", element: "O", order: "asc" },
    ] as Plan[]) {
      const all = await query(t, plan);
      const ids = all.page.map((s) => s.structure_id);
      const first = (await t.query(internal.optimade.queryStructures, {
        ...scope,
        plan,
        filter: null,
        cursor: null,
        numItems: 3,
        withStructures: true,
      })) as Result & { itemCursors: string[]; structures: (string | null | false)[] };
      expect(first.itemCursors.length).toBe(3);
      expect(first.structures.length).toBe(3);
      // Cut after the second item: the rest follows from its cursor, nothing lost, nothing twice.
      const rest = await query(t, plan, { cursor: first.itemCursors[1] });
      expect([...first.page.slice(0, 2), ...rest.page].map((s) => s.structure_id)).toEqual(ids);
      expect((await query(t, plan, { cursor: first.itemCursors[2] })).page.map((s) => s.structure_id)).toEqual(ids.slice(3));
    }
    await put(t, [
      record("inline", { nsites: 1 }, { structure: '{"nsites":1}' }),
      record("chunked", { nsites: 1 }, { parts: [{ name: "structure", size: 10, sha256: "0".repeat(64), chunk_count: 1 }], chunks: [{ part: "structure", chunk_index: 0, text: '{"nsites":1}' }] }),
    ], { tenant_id: "t1", workspace_id: "payloads" });
    const payloads = (await t.query(internal.optimade.queryStructures, {
      tenant_id: "t1",
      workspace_id: "payloads",
      plan: { index: "structure_id", order: "asc" },
      filter: null,
      cursor: null,
      numItems: 10,
      withStructures: true,
    })) as Result & { structures: (string | null | false)[] };
    expect(payloads.page.map((s) => s.structure_id)).toEqual(["chunked", "inline"]);
    expect(payloads.structures).toEqual([false, '{"nsites":1}']);
  });

  test("a call stops at half of a transaction's read bytes, with the rest on the next call", async () => {
    const t = setup();
    const big = "x".repeat(60_000); // near the 64 KiB of inline payloads a record may have
    const ids = Array.from({ length: 150 }, (_, i) => `big${String(i).padStart(3, "0")}`);
    for (let start = 0; start < ids.length; start += 50) {
      await put(t, ids.slice(start, start + 50).map((id) => record(id, { nsites: 1 }, { cif: big })));
    }
    const plan: Plan = { index: "structure_id", order: "asc" };
    const first = await query(t, plan);
    expect(first.isDone).toBe(false);
    expect(first.page.length).toBe(first.rowsRead);
    expect(first.rowsRead).toBeGreaterThan(100); // about 8 MiB of 60 KB records
    expect(first.rowsRead).toBeLessThan(150);
    const rest = await query(t, plan, { cursor: first.continueCursor });
    expect(rest.isDone).toBe(true);
    expect([...first.page, ...rest.page].map((s) => s.structure_id)).toEqual(ids);
  });

  test("filters see the entry document: id, last_modified text, source, node", async () => {
    const t = setup();
    await workspace(t);
    const plan: Plan = { index: "structure_id", order: "asc" };
    const ids = async (filter: unknown) => (await walk(t, plan, { filter })).ids;
    expect(await ids({ id: { $contains: "-" } })).toEqual(["fe2o3-bands", "nothing-but-sites", "si-scf"]);
    expect(await ids({ _structstore_source: { $exists: true }, "_structstore_source.filename": { $endswith: "o.cif" } })).toEqual(["feo"]);
    expect(await ids({ last_modified: { $gt: "2000-01-01T00:00:00.000000Z" }, type: "structures", nsites: null })).toEqual(["alloy", "bare"]);
    expect(await ids({ _structstore_aiida_node: null, chemical_formula_hill: { $exists: true } })).toHaveLength(WORKSPACE.length);
  });
});

describe("queryStructures agrees with the Python API", () => {
  test("every case of the shared file: the entries each filter matches, as evaluate.py finds them", async () => {
    const cases = JSON.parse(casesText) as {
      queries: { filter: string | null; query: unknown }[];
      entries: { record: Record<string, unknown> }[];
      entry_expected: string[];
      checked: { query: unknown; valid: boolean }[];
    };
    const t = setup();
    await t.run(async (ctx) => {
      for (const { record: doc } of cases.entries) {
        await ctx.db.insert("structures", { ...doc, cif: null, structure: null, params: null, parts: [], generation: "g" } as never);
      }
    });
    const ids = cases.entries.map((entry) => entry.record.structure_id as string);
    const plan: Plan = { index: "structure_id", order: "asc" };
    let served = 0;
    for (const [i, { query }] of cases.queries.entries()) {
      if (!cases.checked[i].valid) {
        await expectCode(t.query(internal.optimade.queryStructures, { ...scope, plan, filter: JSON.stringify(query), cursor: null, numItems: 10 }), "INVALID_ARGUMENT", /invalid filter/);
        continue;
      }
      const expected = ids.filter((_, k) => cases.entry_expected[i][k] === "1").sort();
      expect([JSON.stringify(query), (await walk(t, plan, { filter: query })).ids]).toEqual([JSON.stringify(query), expected]);
      served += 1;
    }
    expect(served).toBeGreaterThan(100);
  });
});

describe("queryStructures isolation and refusals", () => {
  test("never returns another tenant's or workspace's records", async () => {
    const t = setup();
    const other = { tenant_id: "t1", workspace_id: "w2" };
    const tenant = { tenant_id: "t2", workspace_id: "w1" };
    await put(t, [record("a", { elements: ["Fe"], nsites: 1, nelements: 1, chemical_formula_reduced: "Fe" })]);
    await put(t, [record("a", { elements: ["Fe"], nsites: 1, nelements: 1, chemical_formula_reduced: "Fe" }), record("b", { elements: ["Fe"] })], other);
    await put(t, [record("c", { elements: ["Fe"], nsites: 1, nelements: 1, chemical_formula_reduced: "Fe" })], tenant);
    for (const index of ["structure_id", "updated_at", "nsites", "nelements", "chemical_formula_reduced", "element"] as const) {
      const plan: Plan = { index, order: "asc", ...(index === "element" ? { element: "Fe" } : {}) };
      const pages = await Promise.all([scope, other, tenant].map((where) => walk(t, plan, { where, numItems: 1 })));
      // In w2, "b" lacks nsites, nelements and the formula: it sorts first on those indexes.
      const w2 = ["nsites", "nelements", "chemical_formula_reduced"].includes(index) ? ["b", "a"] : ["a", "b"];
      expect(pages.map((p) => p.ids)).toEqual([["a"], w2, ["c"]]);
      const result = await query(t, plan, { where: scope });
      expect(result.page.every((s) => (s as unknown as typeof scope).tenant_id === "t1" && (s as unknown as typeof scope).workspace_id === "w1")).toBe(true);
    }
  });

  test("a bad query, plan, page size, budget or cursor is refused with a clear message", async () => {
    const t = setup();
    await workspace(t);
    const plan: Plan = { index: "nsites", order: "asc" };
    const call = (overrides: Record<string, unknown>) =>
      t.query(internal.optimade.queryStructures, { ...scope, plan, filter: null, cursor: null, numItems: 10, ...overrides } as never);
    await expectCode(call({ filter: "nsites > 2" }), "INVALID_ARGUMENT", /not JSON/);
    await expectCode(call({ filter: JSON.stringify({ id: { $regex: ".*" } }) }), "INVALID_ARGUMENT", /unknown operator "\$regex"/);
    await expectCode(call({ filter: "[]" }), "INVALID_ARGUMENT", /must be an object/);
    await expectCode(call({ filter: JSON.stringify({ id: { $in: [] } }) }), "INVALID_ARGUMENT", /non-empty list/);
    await expectCode(call({ filter: " ".repeat(limits.protocol.maxQueryFilterChars + 1) }), "LIMIT_EXCEEDED", /filter/);
    let deep: unknown = { id: "x" };
    for (let i = 0; i < 70; i++) deep = { $or: [deep] };
    await expectCode(call({ filter: JSON.stringify(deep) }), "INVALID_ARGUMENT", /nested deeper than 64/);
    await expectCode(call({ numItems: 0 }), "INVALID_ARGUMENT", /numItems/);
    await expectCode(call({ numItems: limits.protocol.maxQueryPage + 1 }), "INVALID_ARGUMENT", /numItems/);
    await expectCode(call({ maximumRowsRead: limits.protocol.maxQueryRowsRead + 1 }), "INVALID_ARGUMENT", /maximumRowsRead/);
    await expectCode(call({ maximumRowsRead: 1.5 }), "INVALID_ARGUMENT", /maximumRowsRead/);
    await expectCode(call({ plan: { index: "element", order: "asc" } }), "INVALID_ARGUMENT", /plan.element/);
    await expectCode(call({ plan: { ...plan, element: "Fe" } }), "INVALID_ARGUMENT", /plan.element/);
    await expectCode(call({ plan: { ...plan, lower: { value: "2", inclusive: true } } }), "INVALID_ARGUMENT", /must be a number/);
    await expectCode(call({ plan: { index: "structure_id", order: "asc", upper: { value: 3, inclusive: true } } }), "INVALID_ARGUMENT", /must be a string/);
    await expectCode(call({ tenant_id: "bad tenant" }), "INVALID_ARGUMENT", /tenant_id/);
    const first = (await call({ numItems: 1 })) as Result;
    await expectCode(call({ cursor: first.continueCursor, plan: { ...plan, order: "desc" } }), "INVALID_ARGUMENT", /another plan/);
    await expectCode(call({ cursor: "garbage" }), "INVALID_ARGUMENT", /cursor/);
    const forged = JSON.parse(first.continueCursor);
    await expectCode(call({ cursor: JSON.stringify({ ...forged, after: [2, "../x"] }) }), "INVALID_ARGUMENT", /not a valid id/);
    await expectCode(call({ cursor: JSON.stringify({ ...forged, after: ["2", "x"] }) }), "INVALID_ARGUMENT", /malformed/);
    const bounded = { ...plan, lower: { value: 5, inclusive: true } };
    const real = JSON.parse(((await call({ plan: bounded, numItems: 1 })) as Result).continueCursor);
    const cursor = JSON.stringify({ ...real, after: [1, "x"] });
    await expectCode(call({ plan: bounded, cursor }), "INVALID_ARGUMENT", /outside the plan's bounds/);
  });
});
