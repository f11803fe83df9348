import { convexTest } from "convex-test";
import { describe, expect, test } from "vitest";
import { internal } from "./_generated/api";
import schema from "./schema";

const modules = import.meta.glob("./**/*.ts");
const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);
const HASH_C = "c".repeat(64);
const scope = { tenant_id: "t1", workspace_id: "w1" };

function setup() {
  return convexTest({ schema, modules, transactionLimits: true });
}

type Part = "raw" | "cif" | "structure" | "params";

function record(structure_id: string, overrides: Record<string, unknown> = {}) {
  return {
    structure_id,
    generation: `g-${structure_id}-${Math.random().toString(36).slice(2)}`,
    content_hash: HASH_A,
    source: { kind: "cif", filename: `${structure_id}.cif` },
    summary: { elements: ["Si"], nelements: 1, nsites: 2, chemical_formula_reduced: "Si" },
    node_uuid: null,
    cif: "data_x\n",
    structure: '{"nsites":2}',
    params: null,
    parts: [{ name: "raw" as Part, size: 6, sha256: HASH_C, chunk_count: 2 }],
    chunks: [
      { part: "raw" as Part, chunk_index: 0, text: "abc" },
      { part: "raw" as Part, chunk_index: 1, text: "def" },
    ] as { part: Part; chunk_index: number; text: string }[] | null,
    ...overrides,
  };
}

async function readAll(t: ReturnType<typeof setup>, structure_id: string, generation: string, part: Part = "raw") {
  const texts: string[] = [];
  let from_index: number | null = 0;
  while (from_index !== null) {
    const page: { chunks: { chunk_index: number; text: string }[]; next_index: number | null } = await t.query(
      internal.structures.readChunks,
      { ...scope, structure_id, generation, part, from_index, max_bytes: 4 },
    );
    texts.push(...page.chunks.map((c) => c.text));
    from_index = page.next_index;
  }
  return texts;
}

async function chunkCount(t: ReturnType<typeof setup>) {
  return await t.run(async (ctx) => (await ctx.db.query("structure_raw_chunks").collect()).length);
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

describe("putBatch", () => {
  test("creates, then leaves equal content alone, then updates and deletes the old chunks", async () => {
    const t = setup();
    const first = record("s1");
    expect(await t.mutation(internal.structures.putBatch, { ...scope, records: [first] })).toEqual([
      { structure_id: "s1", status: "created", chunk_count: 2, garbage: false },
    ]);
    const again = record("s1"); // same content hash, other generation: a retry
    expect((await t.mutation(internal.structures.putBatch, { ...scope, records: [again] }))[0].status).toBe("unchanged");
    const stored = await t.query(internal.structures.getStructure, { ...scope, structure_id: "s1" });
    expect(stored?.generation).toBe(first.generation);
    expect(stored?.raw_size).toBe(6);
    expect(await readAll(t, "s1", first.generation)).toEqual(["abc", "def"]);

    const second = record("s1", {
      content_hash: HASH_B,
      chunks: [
        { part: "raw", chunk_index: 0, text: "uvw" },
        { part: "raw", chunk_index: 1, text: "xyz" },
      ],
    });
    expect((await t.mutation(internal.structures.putBatch, { ...scope, records: [second] }))[0].status).toBe("updated");
    expect(await readAll(t, "s1", second.generation)).toEqual(["uvw", "xyz"]);
    expect(await readAll(t, "s1", first.generation)).toEqual([]);
    expect(await chunkCount(t)).toBe(2);
    const updated = await t.query(internal.structures.getStructure, { ...scope, structure_id: "s1" });
    expect(updated?.created_at).toBe(stored?.created_at);
    expect(updated!.updated_at).toBeGreaterThanOrEqual(stored!.updated_at);
  });

  test("a retried commit of the same generation is a no-op", async () => {
    const t = setup();
    const r = record("s1");
    await t.mutation(internal.structures.putBatch, { ...scope, records: [r] });
    const retry = { ...r, content_hash: HASH_B };
    expect((await t.mutation(internal.structures.putBatch, { ...scope, records: [retry] }))[0].status).toBe("unchanged");
    expect(await chunkCount(t)).toBe(2);
  });

  test("records without raw input and with chunked payload parts", async () => {
    const t = setup();
    const r = record("s2", {
      cif: null,
      parts: [{ name: "cif", size: 4, sha256: HASH_C, chunk_count: 2 }],
      chunks: [
        { part: "cif", chunk_index: 0, text: "da" },
        { part: "cif", chunk_index: 1, text: "ta" },
      ],
    });
    await t.mutation(internal.structures.putBatch, { ...scope, records: [r] });
    const stored = await t.query(internal.structures.getStructure, { ...scope, structure_id: "s2" });
    expect(stored).toMatchObject({ cif: null, chunk_count: 0, raw_size: null, raw_sha256: null });
    expect(await readAll(t, "s2", r.generation, "cif")).toEqual(["da", "ta"]);
  });

  test("large replaced versions become garbage and collectGarbage removes them", async () => {
    const t = setup();
    const big = "x".repeat(512 * 1024);
    const chunks = Array.from({ length: 10 }, (_, i) => ({ part: "raw" as Part, chunk_index: i, text: big }));
    const first = record("big", { parts: [{ name: "raw", size: 10 * big.length, sha256: HASH_C, chunk_count: 10 }], chunks: null });
    for (let i = 0; i < 10; i += 5) {
      await t.mutation(internal.structures.stageChunks, {
        ...scope, structure_id: "big", generation: first.generation, chunks: chunks.slice(i, i + 5),
      });
    }
    await t.mutation(internal.structures.putBatch, { ...scope, records: [first] });
    const second = record("big", { content_hash: HASH_B });
    const [result] = await t.mutation(internal.structures.putBatch, { ...scope, records: [second] });
    expect(result).toMatchObject({ status: "updated", garbage: true });
    expect(await chunkCount(t)).toBe(12);
    let done = false;
    let calls = 0;
    while (!done) {
      const out = await t.mutation(internal.structures.collectGarbage, { ...scope, older_than_ms: 3_600_000, max_bytes: 2 * 1024 * 1024 });
      done = out.done;
      calls += 1;
    }
    expect(calls).toBeGreaterThan(1); // paged by bytes
    expect(await chunkCount(t)).toBe(2);
    expect(await readAll(t, "big", second.generation)).toEqual(["abc", "def"]);
  });

  test.each([
    [{ structure_id: "a/b" }, /structure_id/],
    [{ content_hash: "nothex" }, /content_hash/],
    [{ generation: "bad generation!" }, /generation/],
    [{ chunks: [{ part: "raw", chunk_index: 0, text: "abc" }] }, /1 chunks sent/],
    [{ chunks: [{ part: "raw", chunk_index: 0, text: "a" }, { part: "raw", chunk_index: 0, text: "b" }] }, /appears twice/],
    [{ chunks: [{ part: "raw", chunk_index: 0, text: "a" }, { part: "raw", chunk_index: 2, text: "b" }] }, /not below chunk_count/],
    [{ chunks: [{ part: "raw", chunk_index: 0, text: "a" }, { part: "raw", chunk_index: 1.5, text: "b" }] }, /integer/],
    [{ chunks: [{ part: "raw", chunk_index: 0, text: "a" }, { part: "cif", chunk_index: 0, text: "b" }] }, /does not declare/],
    [{ parts: [{ name: "cif", size: 1, sha256: HASH_C, chunk_count: 0 }], chunks: [] }, /both inline and chunked/],
    [{ parts: [{ name: "raw", size: -1, sha256: HASH_C, chunk_count: 0 }], chunks: [] }, /size of raw/],
  ])("rejects invalid records and writes nothing (%#)", async (overrides, message) => {
    const t = setup();
    await expectCode(
      t.mutation(internal.structures.putBatch, { ...scope, records: [record("ok"), record("s1", overrides)] }),
      "INVALID_ARGUMENT",
      message,
    );
    expect(await t.query(internal.structures.getStructure, { ...scope, structure_id: "ok" })).toBeNull();
    expect(await chunkCount(t)).toBe(0);
  });

  test("rejects invalid tenants and workspaces", async () => {
    const t = setup();
    await expectCode(t.mutation(internal.structures.putBatch, { tenant_id: "", workspace_id: "w", records: [] }), "INVALID_ARGUMENT");
    await expectCode(t.mutation(internal.structures.putBatch, { tenant_id: "t", workspace_id: "../x", records: [] }), "INVALID_ARGUMENT");
  });

  test("rejects a chunk over the size limit", async () => {
    const t = setup();
    const text = "é".repeat(400 * 1024); // 800 KiB of UTF-8
    const r = record("s1", { parts: [{ name: "raw", size: 2 * text.length, sha256: HASH_C, chunk_count: 1 }], chunks: [{ part: "raw", chunk_index: 0, text }] });
    await expectCode(t.mutation(internal.structures.putBatch, { ...scope, records: [r] }), "LIMIT_EXCEEDED");
  });

  test("a reused generation is a conflict", async () => {
    const t = setup();
    const r = record("s1");
    await t.mutation(internal.structures.putBatch, { ...scope, records: [r] });
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("s1", { content_hash: HASH_B, generation: "other" })] });
    // The first generation's chunks are gone and its generation id is free again; a third writer reusing the
    // second's generation with other content must be refused.
    await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: "s2", generation: "g2", chunks: [] });
    await expectCode(
      t.mutation(internal.structures.putBatch, { ...scope, records: [record("s2", { generation: "g2" })] }),
      "CONFLICT",
    );
  });
});

describe("staged uploads", () => {
  test("commit needs every chunk, staging is idempotent, readers never see staged chunks", async () => {
    const t = setup();
    const committed = record("s1");
    await t.mutation(internal.structures.putBatch, { ...scope, records: [committed] });
    const next = record("s1", { content_hash: HASH_B, chunks: null });
    const chunks = [
      { part: "raw" as Part, chunk_index: 0, text: "new" },
      { part: "raw" as Part, chunk_index: 1, text: "er" },
    ];
    await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: "s1", generation: next.generation, chunks: chunks.slice(0, 1) });
    await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: "s1", generation: next.generation, chunks: chunks.slice(0, 1) });
    await expectCode(t.mutation(internal.structures.putBatch, { ...scope, records: [next] }), "INCOMPLETE_UPLOAD", /raw:1/);
    // The committed version is untouched.
    const stored = await t.query(internal.structures.getStructure, { ...scope, structure_id: "s1" });
    expect(stored?.generation).toBe(committed.generation);
    expect(await readAll(t, "s1", committed.generation)).toEqual(["abc", "def"]);
    await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: "s1", generation: next.generation, chunks });
    expect((await t.mutation(internal.structures.putBatch, { ...scope, records: [next] }))[0].status).toBe("updated");
    expect(await readAll(t, "s1", next.generation)).toEqual(["new", "er"]);
    expect(await chunkCount(t)).toBe(2);
    expect(await t.run(async (ctx) => (await ctx.db.query("structure_chunk_sets").collect()).length)).toBe(0);
    // Staging for the committed generation again reports it as committed.
    expect(
      await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: "s1", generation: next.generation, chunks }),
    ).toEqual({ received: -1, committed: true });
  });

  test("abandoned uploads are collected only once they are old enough", async () => {
    const t = setup();
    await t.mutation(internal.structures.stageChunks, {
      ...scope, structure_id: "s1", generation: "abandoned", chunks: [{ part: "raw", chunk_index: 0, text: "x" }],
    });
    expect(await t.mutation(internal.structures.collectGarbage, { ...scope, older_than_ms: 3_600_000 })).toEqual({ deleted: 0, done: true });
    expect(await chunkCount(t)).toBe(1);
    expect(await t.mutation(internal.structures.collectGarbage, { ...scope, older_than_ms: 0 })).toEqual({ deleted: 1, done: true });
    expect(await chunkCount(t)).toBe(0);
  });
});

describe("reading", () => {
  test("listStructures pages newest first and never crosses tenants or workspaces", async () => {
    const t = setup();
    for (const id of ["a", "b", "c"]) {
      await t.mutation(internal.structures.putBatch, { ...scope, records: [record(id)] });
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    await t.mutation(internal.structures.putBatch, { tenant_id: "t2", workspace_id: "w1", records: [record("x")] });
    await t.mutation(internal.structures.putBatch, { tenant_id: "t1", workspace_id: "w2", records: [record("y")] });
    const first = await t.query(internal.structures.listStructures, { ...scope, paginationOpts: { numItems: 2, cursor: null } });
    expect(first.page.map((r) => r.structure_id)).toEqual(["c", "b"]);
    expect(first.page[0]).not.toHaveProperty("cif");
    const second = await t.query(internal.structures.listStructures, { ...scope, paginationOpts: { numItems: 2, cursor: first.continueCursor } });
    expect(second.page.map((r) => r.structure_id)).toEqual(["a"]);
    expect(second.isDone).toBe(true);
    expect(await t.query(internal.structures.getStructure, { tenant_id: "t2", workspace_id: "w1", structure_id: "a" })).toBeNull();
    await expectCode(t.query(internal.structures.listStructures, { ...scope, paginationOpts: { numItems: 1000, cursor: null } }), "INVALID_ARGUMENT");
  });

  test("listStructures restricts updated_at to a range within the index", async () => {
    const t = setup();
    const stamps: number[] = [];
    for (const id of ["a", "b", "c"]) {
      await t.mutation(internal.structures.putBatch, { ...scope, records: [record(id)] });
      stamps.push((await t.query(internal.structures.getStructure, { ...scope, structure_id: id }))!.updated_at);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const list = async (range: { updated_min?: number; updated_max?: number }) =>
      (await t.query(internal.structures.listStructures, { ...scope, ...range, paginationOpts: { numItems: 10, cursor: null } }))
        .page.map((r) => r.structure_id);
    expect(await list({ updated_min: stamps[1] })).toEqual(["c", "b"]);
    expect(await list({ updated_max: stamps[1] })).toEqual(["b", "a"]);
    expect(await list({ updated_min: stamps[1], updated_max: stamps[1] })).toEqual(["b"]);
    expect(await list({ updated_min: stamps[2] + 1 })).toEqual([]);
    await expectCode(
      t.query(internal.structures.listStructures, { ...scope, updated_min: Number.NaN, paginationOpts: { numItems: 1, cursor: null } }),
      "INVALID_ARGUMENT",
    );
  });

  test("contentHashes returns only committed records of the scope", async () => {
    const t = setup();
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("a"), record("b", { content_hash: HASH_B })] });
    const hashes = await t.query(internal.structures.contentHashes, { ...scope, structure_ids: ["a", "b", "zz"] });
    expect(hashes).toEqual([
      { structure_id: "a", content_hash: HASH_A },
      { structure_id: "b", content_hash: HASH_B },
    ]);
    expect(await t.query(internal.structures.contentHashes, { tenant_id: "t9", workspace_id: "w1", structure_ids: ["a"] })).toEqual([]);
  });

  test("readChunks validates its arguments", async () => {
    const t = setup();
    await expectCode(
      t.query(internal.structures.readChunks, { ...scope, structure_id: "s", generation: "g", part: "raw", from_index: -1 }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("removeStructure", () => {
  test("deletes the record and its chunks, and only in its own scope", async () => {
    const t = setup();
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("s1")] });
    await t.mutation(internal.structures.putBatch, { tenant_id: "t2", workspace_id: "w1", records: [record("s1")] });
    expect(await t.mutation(internal.structures.removeStructure, { ...scope, structure_id: "s1" })).toEqual({ existed: true, garbage: false });
    expect(await t.mutation(internal.structures.removeStructure, { ...scope, structure_id: "s1" })).toEqual({ existed: false, garbage: false });
    expect(await t.query(internal.structures.getStructure, { ...scope, structure_id: "s1" })).toBeNull();
    expect(await t.query(internal.structures.getStructure, { tenant_id: "t2", workspace_id: "w1", structure_id: "s1" })).not.toBeNull();
    expect(await chunkCount(t)).toBe(2);
  });
});

describe("transaction limits", () => {
  async function stageAndCommit(t: ReturnType<typeof setup>, id: string, megabytes: number) {
    const text = "y".repeat(512 * 1024);
    const count = Math.ceil((megabytes * 1024 * 1024) / text.length);
    const r = record(id, { parts: [{ name: "raw", size: count * text.length, sha256: HASH_C, chunk_count: count }], chunks: null });
    for (let i = 0; i < count; i += 6) {
      const chunks = Array.from({ length: Math.min(6, count - i) }, (_, j) => ({ part: "raw" as Part, chunk_index: i + j, text }));
      await t.mutation(internal.structures.stageChunks, { ...scope, structure_id: id, generation: r.generation, chunks });
    }
    await t.mutation(internal.structures.putBatch, { ...scope, records: [r] });
    return count;
  }

  test("a deleted record of 8.1 MiB is collected within the read limit, page by page", async () => {
    const t = setup();
    const count = await stageAndCommit(t, "huge", 8.1);
    expect(await t.mutation(internal.structures.removeStructure, { ...scope, structure_id: "huge" })).toEqual({ existed: true, garbage: true });
    expect(await chunkCount(t)).toBe(count);
    let calls = 0;
    for (let done = false; !done; calls++) {
      done = (await t.mutation(internal.structures.collectGarbage, { ...scope, older_than_ms: 1e15 })).done;
    }
    expect(calls).toBeGreaterThan(2);
    expect(await chunkCount(t)).toBe(0);
  });

  test("replacing a large record never reads more than the mutation may", async () => {
    const t = setup();
    await stageAndCommit(t, "big", 6);
    const [result] = await t.mutation(internal.structures.putBatch, { ...scope, records: [record("big", { content_hash: HASH_B })] });
    expect(result).toMatchObject({ status: "updated", garbage: true });
  });

  test("inline payloads over 64 KiB are refused", async () => {
    const t = setup();
    await expectCode(
      t.mutation(internal.structures.putBatch, { ...scope, records: [record("s", { cif: "c".repeat(65 * 1024) })] }),
      "LIMIT_EXCEEDED",
      /inline payloads/,
    );
  });

  test("a page of large records stops at the byte budget instead of failing", async () => {
    const t = setup();
    const cif = "c".repeat(60 * 1024);
    for (let i = 0; i < 200; i += 50) {
      const records = Array.from({ length: 50 }, (_, j) => record(`r${i + j}`, { cif, parts: [], chunks: [] }));
      await t.mutation(internal.structures.putBatch, { ...scope, records });
    }
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    for (let done = false; !done; pages++) {
      const page: { page: { structure_id: string }[]; isDone: boolean; continueCursor: string } = await t.query(
        internal.structures.listStructures,
        { ...scope, paginationOpts: { numItems: 200, cursor } },
      );
      page.page.forEach((r) => seen.add(r.structure_id));
      done = page.isDone;
      cursor = page.continueCursor;
    }
    expect(seen.size).toBe(200);
    expect(pages).toBeGreaterThan(1);
  });

  test("contentHashes takes at most 100 ids", async () => {
    const t = setup();
    const ids = Array.from({ length: 101 }, (_, i) => `s${i}`);
    await expectCode(t.query(internal.structures.contentHashes, { ...scope, structure_ids: ids }), "LIMIT_EXCEEDED");
  });
});

describe("ownership", () => {
  const A = "11111111-1111-4111-8111-111111111111";
  const B = "22222222-2222-4222-8222-222222222222";

  test("another node's record is reported as a conflict and kept; the rest of the batch commits", async () => {
    const t = setup();
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("s1", { node_uuid: A })] });
    const results = await t.mutation(internal.structures.putBatch, {
      ...scope,
      records: [record("s1", { node_uuid: B, content_hash: HASH_B }), record("s2", { node_uuid: B })],
    });
    expect(results).toEqual([
      { structure_id: "s1", status: "conflict", chunk_count: 2, garbage: false, owner: A },
      { structure_id: "s2", status: "created", chunk_count: 2, garbage: false },
    ]);
    expect((await t.query(internal.structures.getStructure, { ...scope, structure_id: "s1" }))?.node_uuid).toBe(A);
    expect(await chunkCount(t)).toBe(4);
    const [replaced] = await t.mutation(internal.structures.putBatch, {
      ...scope, replace_owner: true, records: [record("s1", { node_uuid: B, content_hash: HASH_B })],
    });
    expect(replaced.status).toBe("updated");
  });

  test("a staged upload refused for ownership becomes garbage", async () => {
    const t = setup();
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("s1", { node_uuid: A })] });
    const staged = record("s1", { node_uuid: B, content_hash: HASH_B, chunks: null });
    await t.mutation(internal.structures.stageChunks, {
      ...scope, structure_id: "s1", generation: staged.generation,
      chunks: [{ part: "raw", chunk_index: 0, text: "abc" }, { part: "raw", chunk_index: 1, text: "def" }],
    });
    const [result] = await t.mutation(internal.structures.putBatch, { ...scope, records: [staged] });
    expect(result).toMatchObject({ status: "conflict", garbage: true, owner: A });
    await t.mutation(internal.structures.collectGarbage, { ...scope, structure_id: "s1", older_than_ms: 1e15 });
    expect(await chunkCount(t)).toBe(2);
  });
});

describe("instance", () => {
  test("created once, then stable", async () => {
    const t = setup();
    expect(await t.query(internal.structures.getInstance, {})).toBeNull();
    expect(await t.mutation(internal.structures.ensureInstance, { candidate: "first" })).toBe("first");
    expect(await t.mutation(internal.structures.ensureInstance, { candidate: "second" })).toBe("first");
    expect(await t.query(internal.structures.getInstance, {})).toBe("first");
  });
});

describe("getStructures", () => {
  test("returns the records asked for, in order, null for missing ones and other scopes' records", async () => {
    const t = setup();
    await t.mutation(internal.structures.putBatch, { ...scope, records: [record("a"), record("b")] });
    await t.mutation(internal.structures.putBatch, { tenant_id: "t2", workspace_id: "w1", records: [record("c")] });
    const found = await t.query(internal.structures.getStructures, { ...scope, structure_ids: ["b", "missing", "c", "a"] });
    expect(found.map((r) => r?.structure_id ?? null)).toEqual(["b", null, null, "a"]);
    const one = await t.query(internal.structures.getStructure, { ...scope, structure_id: "b" });
    expect(found[0]).toEqual(one);
    expect(await t.query(internal.structures.getStructures, { ...scope, structure_ids: [] })).toEqual([]);
  });

  test("refuses too many ids and bad ids", async () => {
    const t = setup();
    const many = Array.from({ length: 101 }, (_, i) => `s${i}`);
    await expectCode(t.query(internal.structures.getStructures, { ...scope, structure_ids: many }), "LIMIT_EXCEEDED");
    await expectCode(t.query(internal.structures.getStructures, { ...scope, structure_ids: ["../x"] }), "INVALID_ARGUMENT");
  });
});
