// convex/ mounted as a component, under convex-test with the component registered: the app of devserver/app/convex
// mounts it twice ("structstore", "structstore2") and calls it through the app-side functions that
// `npm run app-functions` writes (internal, `ctx.runQuery(components.<name>.<module>.<fn>, args)`).
import { convexTest } from "convex-test";
import { makeFunctionReference } from "convex/server";
import { describe, expect, test } from "vitest";
import schema from "./schema";
import * as structures from "./structures";
import * as executions from "./executions";
import * as optimade from "./optimade";
import { LAYOUT } from "./layout";
import * as appStructures from "../devserver/app/convex/structstore/structures";

const modules = import.meta.glob("./**/*.ts");
const appModules = import.meta.glob("../devserver/app/convex/**/*.ts");
const MOUNTS = ["structstore", "structstore2"];
const scope = { tenant_id: "t1", workspace_id: "w1" };
const HASH = "a".repeat(64);

function setup() {
  const t = convexTest({ modules: { ...appModules, ...import.meta.glob("../devserver/app/convex/_generated/*.js") }, transactionLimits: true });
  for (const name of MOUNTS) t.registerComponent(name, schema, modules);
  return t;
}

const fn = (mount: string, path: string) => makeFunctionReference<any>(`${mount}/${path}`);

function record(structure_id: string, elements = ["Si"]) {
  return {
    structure_id,
    generation: `g-${structure_id}`,
    content_hash: HASH,
    source: { kind: "cif", filename: `${structure_id}.cif` },
    summary: { elements, nelements: elements.length, nsites: 2, chemical_formula_reduced: elements.join("") },
    node_uuid: null,
    cif: "data_x\n",
    structure: '{"nsites":2}',
    params: null,
    parts: [],
    chunks: [],
  };
}

async function put(t: ReturnType<typeof setup>, mount: string, ids: string[]) {
  return await t.mutation(fn(mount, "structures:putBatch"), { ...scope, records: ids.map((id) => record(id)) });
}

describe("the component layout", () => {
  test("this folder builds its functions for the component: public to the mounting app", () => {
    expect(LAYOUT).toBe("component");
    for (const module of [structures, executions, optimade]) {
      for (const value of Object.values(module) as { isQuery?: boolean; isMutation?: boolean; isPublic?: boolean }[]) {
        if (value && (value.isQuery || value.isMutation)) expect(value.isPublic).toBe(true);
      }
    }
  });

  test("the app-side functions are internal", () => {
    expect((appStructures.putBatch as unknown as { isInternal: boolean }).isInternal).toBe(true);
    expect((appStructures.getStructure as unknown as { isInternal: boolean }).isInternal).toBe(true);
  });

  test("a write through one mount is read through it, and the other mount's tables never see it", async () => {
    const t = setup();
    expect(await put(t, "structstore", ["s1"])).toEqual([{ structure_id: "s1", status: "created", chunk_count: 0, garbage: false }]);
    const stored = await t.query(fn("structstore", "structures:getStructure"), { ...scope, structure_id: "s1" });
    expect(stored.content_hash).toBe(HASH);
    expect(await t.query(fn("structstore2", "structures:getStructure"), { ...scope, structure_id: "s1" })).toBeNull();
    // Each mount has its own instance id (its own structstore_instance table).
    const first = await t.mutation(fn("structstore", "structures:ensureInstance"), { candidate: "aaaa" });
    const second = await t.mutation(fn("structstore2", "structures:ensureInstance"), { candidate: "bbbb" });
    expect([first, second]).toEqual(["aaaa", "bbbb"]);
    // The component's tables are apart from the app's (which has none of its own) and from the other mount's.
    expect(await t.run(async (ctx) => await ctx.db.query("structures" as any).collect())).toEqual([]);
  });

  test("a ConvexError of the component crosses into the app with its code and message", async () => {
    const t = setup();
    let caught: unknown;
    try {
      await t.query(fn("structstore", "structures:getStructure"), { ...scope, structure_id: "not an id" });
    } catch (error) {
      caught = error;
    }
    expect((caught as { data?: { code?: string; message?: string } }).data).toEqual({
      code: "INVALID_ARGUMENT",
      message: expect.stringMatching(/structure_id "not an id" is not a valid id/),
    });
  });

  test("pages of listStructures and queryStructures continue across calls through the app", async () => {
    const t = setup();
    const ids = Array.from({ length: 7 }, (_, i) => `s${i}`);
    await put(t, "structstore", ids);
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let calls = 0; calls < 10; calls++) {
      const page: { page: { structure_id: string }[]; isDone: boolean; continueCursor: string } = await t.query(
        fn("structstore", "structures:listStructures"),
        { ...scope, paginationOpts: { numItems: 3, cursor } },
      );
      seen.push(...page.page.map((r) => r.structure_id));
      if (page.isDone) break;
      cursor = page.continueCursor;
    }
    expect(seen.sort()).toEqual(ids);

    const found: string[] = [];
    cursor = null;
    for (let calls = 0; calls < 10; calls++) {
      const page: { page: { structure_id: string }[]; isDone: boolean; continueCursor: string } = await t.query(
        fn("structstore", "optimade:queryStructures"),
        { ...scope, plan: { index: "structure_id", order: "asc" }, filter: null, cursor, numItems: 2 },
      );
      found.push(...page.page.map((r) => r.structure_id));
      if (page.isDone) break;
      cursor = page.continueCursor;
    }
    expect(found).toEqual(ids);
  });

  test("execution records go through the app too", async () => {
    const t = setup();
    const page = await t.query(fn("structstore2", "executions:listExecutions"), {
      ...scope,
      paginationOpts: { numItems: 5, cursor: null },
    });
    expect(page.page).toEqual([]);
  });
});
