import { convexTest } from "convex-test";
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import schema from "./schema";

const modules = import.meta.glob("./**/*.ts");
const scope = { tenant_id: "t1", workspace_id: "w1" };
const TOKEN_A = "a".repeat(32);
const TOKEN_B = "b".repeat(32);
const TOKEN_C = "c".repeat(32);
const TOKEN_D = "d".repeat(32);

function setup() {
  return convexTest({ schema, modules, transactionLimits: true });
}

function sha(n: number) {
  return n.toString(16).padStart(8, "0") + "0".repeat(56);
}

function upload(n: number, overrides: Record<string, unknown> = {}) {
  const text = `data_${n}\n`;
  return {
    ...scope,
    upload_id: `u${sha(n).slice(0, 32)}`,
    filename: `${n}.cif`,
    kind: "cif" as const,
    size: text.length,
    sha256: sha(n),
    encoding: "utf-8" as const,
    stored_size: text.length,
    stored_sha256: sha(n),
    chunk_count: 1,
    generation: `g${n}`,
    uploaded_by: "alice",
    structure_id: null,
    chunks: [{ chunk_index: 0, text }] as { chunk_index: number; text: string }[] | null,
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

const claimArgs = (token: string, overrides: Record<string, unknown> = {}) => ({
  claimer: "importer",
  token,
  lease_ms: 60_000,
  max_attempts: 5,
  ...scope,
  ...overrides,
});

describe("createUpload", () => {
  test("creates a pending upload once per bytes, and never returns the storage details", async () => {
    const t = setup();
    const first = await t.mutation(internal.uploads.createUpload, upload(1));
    expect(first.created).toBe(true);
    expect(first.record).toMatchObject({ status: "pending", attempts: 0, claimed_by: null, filename: "1.cif" });
    expect(first.record).not.toHaveProperty("claim_token");
    expect(first.record).not.toHaveProperty("generation");
    const again = await t.mutation(internal.uploads.createUpload, upload(1, { filename: "other.cif", generation: "g9" }));
    expect(again).toEqual({ record: first.record, created: false });
    const read = await t.query(internal.uploads.readUploadChunks, { ...scope, upload_id: upload(1).upload_id, from_index: 0 });
    expect(read).toMatchObject({ encoding: "utf-8", chunk_count: 1, chunks: [{ chunk_index: 0, text: "data_1\n" }], next_index: null });
  });

  test("refuses ids not derived from the sha256, directories in names, and chunks that are not the ones declared", async () => {
    const t = setup();
    await expectCode(t.mutation(internal.uploads.createUpload, upload(1, { upload_id: "u-chosen" })), "INVALID_ARGUMENT", /sha256/);
    await expectCode(t.mutation(internal.uploads.createUpload, upload(1, { filename: "../x.cif" })), "INVALID_ARGUMENT", /directory/);
    await expectCode(t.mutation(internal.uploads.createUpload, upload(1, { chunk_count: 2 })), "INVALID_ARGUMENT", /chunks sent/);
    await expectCode(t.mutation(internal.uploads.createUpload, upload(1, { size: 0 })), "INVALID_ARGUMENT", /empty/);
    await expectCode(t.mutation(internal.uploads.createUpload, upload(1, { ...scope, tenant_id: "bad tenant" })), "INVALID_ARGUMENT");
    expect(await t.run(async (ctx) => (await ctx.db.query("uploads").collect()).length)).toBe(0);
    expect(await t.run(async (ctx) => (await ctx.db.query("upload_chunks").collect()).length)).toBe(0);
  });

  test("a staged upload is committed only when every chunk arrived; what a losing creator staged is garbage", async () => {
    const t = setup();
    const staged = upload(2, { chunks: null, chunk_count: 2, stored_size: 4, size: 4 });
    const stage = (generation: string, chunk_index: number) =>
      t.mutation(internal.uploads.stageUploadChunks, { ...scope, upload_id: staged.upload_id, generation, chunks: [{ chunk_index, text: "ab" }] });
    await stage("g2", 0);
    await expectCode(t.mutation(internal.uploads.createUpload, staged), "INCOMPLETE_UPLOAD", /1 of 2 chunks/);
    expect(await t.query(internal.uploads.getUpload, { ...scope, upload_id: staged.upload_id })).toBeNull();
    await stage("g2", 0); // again: skipped
    await stage("g2", 1);
    await stage("loser", 0);
    expect((await t.mutation(internal.uploads.createUpload, staged)).created).toBe(true);
    expect((await t.mutation(internal.uploads.createUpload, { ...staged, generation: "loser" })).created).toBe(false);
    expect(await stage("late", 0)).toEqual({ received: -1, committed: true });
    expect(await t.mutation(internal.uploads.collectUploadGarbage, { ...scope, older_than_ms: 3_600_000 })).toEqual({ deleted: 1, done: true });
    const read = await t.query(internal.uploads.readUploadChunks, { ...scope, upload_id: staged.upload_id, from_index: 0, max_bytes: 2 });
    expect(read!.chunks).toEqual([{ chunk_index: 0, text: "ab" }]);
    expect(read!.next_index).toBe(1);
  });
});

describe("claimUpload", () => {
  test("a call sent again with the same token answers what the first did", async () => {
    const t = setup();
    await t.mutation(internal.uploads.createUpload, upload(1));
    await t.mutation(internal.uploads.createUpload, upload(2));
    const first = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A));
    expect(await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A))).toEqual(first);
    const complete = { ...scope, upload_id: first!.upload_id, token: TOKEN_A, structure_id: "si", node_uuid: "n" };
    const done = await t.mutation(internal.uploads.completeUpload, complete);
    expect(await t.mutation(internal.uploads.completeUpload, complete)).toEqual(done);
    await expectCode(t.mutation(internal.uploads.completeUpload, { ...complete, structure_id: "other" }), "CLAIM_LOST");
    expect(await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A))).toBeNull(); // its upload is done
    const second = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_C));
    expect(second!.upload_id).toBe(upload(2).upload_id);
  });

  test("takes the oldest pending upload, one claim each, within its scope", async () => {
    const t = setup();
    await t.mutation(internal.uploads.createUpload, upload(1));
    await t.mutation(internal.uploads.createUpload, upload(2));
    await t.mutation(internal.uploads.createUpload, upload(3, { tenant_id: "t2" }));
    const a = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A));
    const b = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_B));
    expect([a!.upload_id, b!.upload_id]).toEqual([upload(1).upload_id, upload(2).upload_id]);
    expect(a).toMatchObject({ status: "importing", attempts: 1, claimed_by: "importer" });
    expect(a).not.toHaveProperty("claim_token");
    expect(await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_C))).toBeNull();
    const other = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_D, { tenant_id: undefined, workspace_id: undefined }));
    expect(other).toMatchObject({ tenant_id: "t2" });
    await expectCode(
      t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A, { tenant_id: undefined })),
      "INVALID_ARGUMENT",
      /needs its tenant_id/,
    );
  });

  test("an expired lease is claimed again; the stale claim changes nothing; too many attempts fail", async () => {
    vi.useFakeTimers();
    try {
      vi.setSystemTime(1_000_000);
      const t = setup();
      await t.mutation(internal.uploads.createUpload, upload(1));
      const key = { ...scope, upload_id: upload(1).upload_id };
      await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A, { lease_ms: 1000 }));
      expect(await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_B))).toBeNull(); // still held
      vi.setSystemTime(1_001_000);
      const again = await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_B, { lease_ms: 1000, max_attempts: 2 }));
      expect(again).toMatchObject({ attempts: 2, claim_expires_at: 1_002_000 });
      const complete = { ...key, structure_id: "si", node_uuid: "n" };
      await expectCode(t.mutation(internal.uploads.completeUpload, { ...complete, token: TOKEN_A }), "CLAIM_LOST", /another importer/);
      await expectCode(t.mutation(internal.uploads.renewUpload, { ...key, token: TOKEN_A, lease_ms: 5 }), "CLAIM_LOST");
      expect(await t.query(internal.uploads.getUpload, key)).toEqual(again);
      vi.setSystemTime(1_002_000);
      expect(await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_C, { max_attempts: 2 }))).toBeNull();
      expect(await t.query(internal.uploads.getUpload, key)).toMatchObject({ status: "failed", message: expect.stringMatching(/interrupted 2 times/) });
      await expectCode(t.mutation(internal.uploads.failUpload, { ...key, token: TOKEN_B, message: "x" }), "CLAIM_LOST", /is failed/);
    } finally {
      vi.useRealTimers();
    }
  });

  test("complete and fail finish the claim and spend the token", async () => {
    const t = setup();
    await t.mutation(internal.uploads.createUpload, upload(1));
    await t.mutation(internal.uploads.createUpload, upload(2));
    const a = (await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_A)))!;
    const b = (await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_B)))!;
    const done = await t.mutation(internal.uploads.completeUpload, { ...scope, upload_id: a.upload_id, token: TOKEN_A, structure_id: "si", node_uuid: "n1" });
    expect(done).toMatchObject({ status: "imported", result_structure_id: "si", node_uuid: "n1" });
    const failed = await t.mutation(internal.uploads.failUpload, { ...scope, upload_id: b.upload_id, token: TOKEN_B, message: "line 2: no cell" });
    expect(failed).toMatchObject({ status: "failed", message: "line 2: no cell" });
    await expectCode(
      t.mutation(internal.uploads.failUpload, { ...scope, upload_id: a.upload_id, token: TOKEN_A, message: "x".repeat(1001) }),
      "INVALID_ARGUMENT",
    );
    // 1,000 characters as Python counts them, astral ones included (2,000 UTF-16 units): accepted.
    const astral = await t.mutation(internal.uploads.createUpload, upload(3));
    const c = (await t.mutation(internal.uploads.claimUpload, claimArgs(TOKEN_C)))!;
    expect(c.upload_id).toBe(astral.record.upload_id);
    const long = await t.mutation(internal.uploads.failUpload, { ...scope, upload_id: c.upload_id, token: TOKEN_C, message: "😀".repeat(1000) });
    expect(long.status).toBe("failed");
    await expectCode(t.mutation(internal.uploads.failUpload, { ...scope, upload_id: a.upload_id, token: TOKEN_A, message: "late" }), "CLAIM_LOST", /is imported/);
    const listed = await t.query(internal.uploads.listUploads, { ...scope, paginationOpts: { numItems: 10, cursor: null } });
    expect(listed.page.map((u) => u.status)).toEqual(["failed", "failed", "imported"]); // newest first
    const imported = await t.query(internal.uploads.listUploads, { ...scope, status: "imported", paginationOpts: { numItems: 10, cursor: null } });
    expect(imported.page.map((u) => u.upload_id)).toEqual([a.upload_id]);
  });
});
