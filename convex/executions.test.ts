import { convexTest } from "convex-test";
import { describe, expect, test } from "vitest";
import { internal } from "./_generated/api";
import { MAX_LINKS, MAX_RECORDS, MAX_STRUCTURES } from "./executions";
import schema from "./schema";

const modules = import.meta.glob("./**/*.ts");
const scope = { tenant_id: "t1", workspace_id: "w1" };
const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const HASH_C = "c".repeat(64);

function setup() {
  return convexTest({ schema, modules, transactionLimits: true });
}

function uuid(n: number) {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
}

function execution(n: number, overrides: Record<string, unknown> = {}) {
  return {
    process_uuid: uuid(n),
    process_label: "PwCalculation",
    process_type: "aiida.calculations:quantumespresso.pw",
    kind: "calcjob" as const,
    state: "waiting" as const,
    exit_status: null,
    exit_message: null,
    computer: "slurm",
    hostname: null,
    scheduler: { type: "core.slurm", job_id: "12", state: "queued" },
    parent_uuid: null,
    structures_in: ["si"],
    structures_out: [] as string[],
    structures_truncated: false,
    created_at: 1000,
    modified_at: 2000,
    content_hash: HASH_A,
    ...overrides,
  };
}

function codeOf(error: unknown): string | undefined {
  return (error as { data?: { code?: string } }).data?.code;
}

async function expectCode(promise: Promise<unknown>, code: string, message?: RegExp) {
  try {
    await promise;
  } catch (error) {
    expect(codeOf(error)).toBe(code);
    if (message) expect((error as { data: { message: string } }).data.message).toMatch(message);
    return;
  }
  throw new Error(`expected a ConvexError with code ${code}`);
}

async function links(t: ReturnType<typeof setup>) {
  return await t.run(async (ctx) =>
    (await ctx.db.query("execution_structures").collect()).map((l) => `${l.structure_id}:${l.process_uuid.slice(-2)}:${l.role}:${l.modified_at}`).sort(),
  );
}

describe("putExecutions", () => {
  test("creates, leaves equal content alone, updates, and keeps the structure links in line", async () => {
    const t = setup();
    const put = (records: ReturnType<typeof execution>[]) => t.mutation(internal.executions.putExecutions, { ...scope, records });
    expect(await put([execution(1)])).toEqual([{ process_uuid: uuid(1), status: "created" }]);
    expect(await put([execution(1)])).toEqual([{ process_uuid: uuid(1), status: "unchanged" }]);
    expect(await links(t)).toEqual(["si:01:input:2000"]);
    const finished = execution(1, {
      state: "finished",
      exit_status: 0,
      modified_at: 3000,
      structures_out: ["si-relaxed", "si"],
      content_hash: HASH_B,
    });
    expect(await put([finished])).toEqual([{ process_uuid: uuid(1), status: "updated" }]);
    expect(await links(t)).toEqual(["si-relaxed:01:output:3000", "si:01:both:3000"]);
    const record = await t.query(internal.executions.getExecution, { ...scope, process_uuid: uuid(1) });
    expect(record).toMatchObject({ state: "finished", exit_status: 0, modified_at: 3000, content_hash: HASH_B });
    // Links that go away are deleted.
    await put([execution(1, { modified_at: 4000, structures_in: [], structures_out: ["x"], content_hash: HASH_C, state: "finished", exit_status: 0 })]);
    expect(await links(t)).toEqual(["x:01:output:4000"]);
  });

  test("an older state never replaces a newer one", async () => {
    const t = setup();
    const put = (records: ReturnType<typeof execution>[]) => t.mutation(internal.executions.putExecutions, { ...scope, records });
    await put([execution(1, { state: "running", modified_at: 5000, content_hash: HASH_B })]);
    expect(await put([execution(1, { state: "waiting", modified_at: 4000 })])).toEqual([{ process_uuid: uuid(1), status: "stale" }]);
    const record = await t.query(internal.executions.getExecution, { ...scope, process_uuid: uuid(1) });
    expect(record!.state).toBe("running");
    // The same modification time with other content (a structure projected later) replaces it.
    expect(await put([execution(1, { state: "running", modified_at: 5000, structures_out: ["y"], content_hash: HASH_C })])).toEqual([
      { process_uuid: uuid(1), status: "updated" },
    ]);
  });

  test("rejects bad records and writes nothing of the batch", async () => {
    const t = setup();
    const put = (records: ReturnType<typeof execution>[], s = scope) => t.mutation(internal.executions.putExecutions, { ...s, records });
    await expectCode(put([execution(1), execution(2, { process_uuid: "not-a-uuid" })]), "INVALID_ARGUMENT", /not a UUID/);
    await expectCode(put([execution(1, { structures_in: ["../etc"] })]), "INVALID_ARGUMENT", /not a valid id/);
    await expectCode(put([execution(1, { process_label: "evil\u202elabel" })]), "INVALID_ARGUMENT", /control/);
    await expectCode(put([execution(1), execution(1)]), "INVALID_ARGUMENT", /twice/);
    await expectCode(put([execution(1)], { tenant_id: "bad tenant", workspace_id: "w" }), "INVALID_ARGUMENT");
    await expectCode(put([execution(1, { exit_status: 1.5 })]), "INVALID_ARGUMENT", /integer/);
    await expectCode(put([execution(1, { scheduler: { type: "core.slurm", job_id: "1; rm -rf", state: null } })]), "INVALID_ARGUMENT");
    const many = Array.from({ length: MAX_STRUCTURES + 1 }, (_, i) => `s${i}`);
    await expectCode(put([execution(1, { structures_in: many })]), "LIMIT_EXCEEDED");
    await expectCode(put(Array.from({ length: MAX_RECORDS + 1 }, (_, i) => execution(i))), "LIMIT_EXCEEDED");
    expect(await t.run(async (ctx) => (await ctx.db.query("executions").collect()).length)).toBe(0);
    expect(await links(t)).toEqual([]);
  });

  test("a batch at the link limit stays within the transaction limits; what does not fit is deferred", async () => {
    const t = setup();
    const ids = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
    const count = MAX_LINKS / (2 * MAX_STRUCTURES);
    const full = (i: number, prefix: string, hash: string) =>
      execution(i, { structures_in: ids(MAX_STRUCTURES, `${prefix}${i}-in-`), structures_out: ids(MAX_STRUCTURES, `${prefix}${i}-out-`), content_hash: hash });
    const records = Array.from({ length: count }, (_, i) => full(i, "a", HASH_A));
    const first = await t.mutation(internal.executions.putExecutions, { ...scope, records });
    expect(first.map((r) => r.status)).toEqual(Array(count).fill("created"));
    expect((await links(t)).length).toBe(MAX_LINKS);
    // Replacing every link of every record deletes and inserts 2,000 documents per record: the last record no longer
    // fits half of a mutation's 16,000 writes and is deferred, with nothing of it written; sent again, it goes through.
    const replaced = Array.from({ length: count }, (_, i) => full(i, "b", HASH_B));
    const second = await t.mutation(internal.executions.putExecutions, { ...scope, records: replaced });
    expect(second.map((r) => r.status)).toEqual([...Array(count - 1).fill("updated"), "deferred"]);
    const last = await t.query(internal.executions.getExecution, { ...scope, process_uuid: uuid(count - 1) });
    expect(last!.content_hash).toBe(HASH_A);
    const third = await t.mutation(internal.executions.putExecutions, { ...scope, records: replaced.slice(count - 1) });
    expect(third.map((r) => r.status)).toEqual(["updated"]);
    const all = await links(t);
    expect(all.length).toBe(MAX_LINKS);
    expect(all.every((link) => link.startsWith("b"))).toBe(true);
  });
});

describe("reading", () => {
  async function seeded() {
    const t = setup();
    await t.mutation(internal.executions.putExecutions, {
      ...scope,
      records: [
        execution(1, { modified_at: 1000, structures_in: ["si"] }),
        execution(2, { modified_at: 3000, structures_in: ["si"], structures_out: ["si-relaxed"], content_hash: HASH_B }),
        execution(3, { modified_at: 2000, structures_in: ["fe"], content_hash: HASH_C }),
      ],
    });
    // The same ids elsewhere: another tenant and another workspace.
    for (const other of [{ tenant_id: "t2", workspace_id: "w1" }, { tenant_id: "t1", workspace_id: "w2" }]) {
      await t.mutation(internal.executions.putExecutions, { ...other, records: [execution(1, { modified_at: 9000 }), execution(4, { modified_at: 9999 })] });
    }
    return t;
  }

  test("listExecutions pages most recently modified first, within its scope", async () => {
    const t = await seeded();
    const first = await t.query(internal.executions.listExecutions, { ...scope, paginationOpts: { numItems: 2, cursor: null } });
    expect(first.page.map((r) => r.process_uuid)).toEqual([uuid(2), uuid(3)]);
    const second = await t.query(internal.executions.listExecutions, { ...scope, paginationOpts: { numItems: 2, cursor: first.continueCursor } });
    expect(second.page.map((r) => [r.process_uuid, r.tenant_id, r.workspace_id])).toEqual([[uuid(1), "t1", "w1"]]);
    expect(second.isDone).toBe(true);
    const recent = await t.query(internal.executions.listExecutions, { ...scope, paginationOpts: { numItems: 10, cursor: null }, modified_min: 2000 });
    expect(recent.page.map((r) => r.process_uuid)).toEqual([uuid(2), uuid(3)]);
  });

  test("listExecutionsOfStructure gives the executions of one structure with their role", async () => {
    const t = await seeded();
    const si = await t.query(internal.executions.listExecutionsOfStructure, { ...scope, structure_id: "si", paginationOpts: { numItems: 10, cursor: null } });
    expect(si.page.map((r) => [r.process_uuid, r.role])).toEqual([[uuid(2), "input"], [uuid(1), "input"]]);
    const relaxed = await t.query(internal.executions.listExecutionsOfStructure, { ...scope, structure_id: "si-relaxed", paginationOpts: { numItems: 10, cursor: null } });
    expect(relaxed.page.map((r) => [r.process_uuid, r.role])).toEqual([[uuid(2), "output"]]);
    const none = await t.query(internal.executions.listExecutionsOfStructure, { tenant_id: "t3", workspace_id: "w1", structure_id: "si", paginationOpts: { numItems: 10, cursor: null } });
    expect(none.page).toEqual([]);
    await expectCode(
      t.query(internal.executions.listExecutionsOfStructure, { ...scope, structure_id: "si", paginationOpts: { numItems: 101, cursor: null } }),
      "INVALID_ARGUMENT",
    );
  });

  test("executionHashes and removeExecution stay within their scope", async () => {
    const t = await seeded();
    const hashes = await t.query(internal.executions.executionHashes, { ...scope, process_uuids: [uuid(1), uuid(4)] });
    expect(hashes).toEqual([{ process_uuid: uuid(1), content_hash: HASH_A, modified_at: 1000 }]);
    expect(await t.mutation(internal.executions.removeExecution, { ...scope, process_uuid: uuid(2) })).toEqual({ existed: true });
    expect(await t.mutation(internal.executions.removeExecution, { ...scope, process_uuid: uuid(2) })).toEqual({ existed: false });
    const relaxed = await t.query(internal.executions.listExecutionsOfStructure, { ...scope, structure_id: "si-relaxed", paginationOpts: { numItems: 10, cursor: null } });
    expect(relaxed.page).toEqual([]);
    const other = await t.query(internal.executions.getExecution, { tenant_id: "t2", workspace_id: "w1", process_uuid: uuid(1) });
    expect(other!.modified_at).toBe(9000);
    await expectCode(t.query(internal.executions.executionHashes, { ...scope, process_uuids: Array.from({ length: 101 }, (_, i) => uuid(i)) }), "LIMIT_EXCEEDED");
  });
});
