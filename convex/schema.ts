// Tables of the aiida-structstore projection. See docs/convex-projection.md for the commit protocol.
//
// Index names follow `by_<field>_and_<field>`; where that would pass Convex's 64-character identifier limit the
// name lists the fields without `_id`/`_and_` (`by_tenant_workspace_structure_generation_part_index`).
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";

export const partName = v.union(
  v.literal("raw"),
  v.literal("cif"),
  v.literal("structure"),
  v.literal("params"),
);

export const partMeta = v.object({
  name: partName,
  size: v.number(),
  sha256: v.string(),
  chunk_count: v.number(),
});

export const source = v.object({
  kind: v.string(),
  filename: v.union(v.string(), v.null()),
  // Who uploaded the file (the API token's subject), for structures imported from an upload.
  uploaded_by: v.optional(v.string()),
});

// The OPTIMADE fields a list view or a filter needs; always inline and small.
export const summary = v.object({
  elements: v.optional(v.array(v.string())),
  nelements: v.optional(v.number()),
  elements_ratios: v.optional(v.array(v.number())),
  chemical_formula_descriptive: v.optional(v.string()),
  chemical_formula_reduced: v.optional(v.string()),
  chemical_formula_anonymous: v.optional(v.string()),
  chemical_formula_hill: v.optional(v.union(v.string(), v.null())),
  dimension_types: v.optional(v.array(v.number())),
  nperiodic_dimensions: v.optional(v.number()),
  lattice_vectors: v.optional(v.array(v.array(v.union(v.number(), v.null())))),
  nsites: v.optional(v.number()),
  structure_features: v.optional(v.array(v.string())),
});

export const structureFields = {
  tenant_id: v.string(),
  workspace_id: v.string(),
  structure_id: v.string(),
  source,
  summary,
  // Inline payloads: CIF text, and the structure payload and parameters as canonical JSON text (exact numbers,
  // any key names). `null` with a matching entry in `parts` means the payload is chunked; `null` without one means
  // the record has none.
  cif: v.union(v.string(), v.null()),
  structure: v.union(v.string(), v.null()),
  params: v.union(v.string(), v.null()),
  parts: v.array(partMeta),
  generation: v.string(),
  content_hash: v.string(),
  node_uuid: v.union(v.string(), v.null()),
  chunk_count: v.number(),
  raw_size: v.union(v.number(), v.null()),
  raw_sha256: v.union(v.string(), v.null()),
  created_at: v.number(),
  updated_at: v.number(),
};

// An AiiDA process as the application sees it (convex/executions.ts). `structures_in`/`structures_out` are the ids
// of the structures of the same workspace it took and produced; `execution_structures` indexes them.
export const executionFields = {
  tenant_id: v.string(),
  workspace_id: v.string(),
  process_uuid: v.string(),
  process_label: v.string(),
  process_type: v.union(v.string(), v.null()),
  kind: v.union(
    v.literal("calcjob"),
    v.literal("calcfunction"),
    v.literal("workchain"),
    v.literal("workfunction"),
    v.literal("process"),
  ),
  state: v.union(
    v.literal("created"),
    v.literal("waiting"),
    v.literal("running"),
    v.literal("finished"),
    v.literal("excepted"),
    v.literal("killed"),
  ),
  exit_status: v.union(v.number(), v.null()),
  exit_message: v.union(v.string(), v.null()),
  computer: v.union(v.string(), v.null()),
  hostname: v.union(v.string(), v.null()),
  scheduler: v.union(
    v.object({ type: v.string(), job_id: v.union(v.string(), v.null()), state: v.union(v.string(), v.null()) }),
    v.null(),
  ),
  parent_uuid: v.union(v.string(), v.null()),
  structures_in: v.array(v.string()),
  structures_out: v.array(v.string()),
  structures_truncated: v.boolean(),
  // AiiDA's ctime and mtime of the process node (milliseconds); `updated_at`: when this document last changed.
  created_at: v.number(),
  modified_at: v.number(),
  content_hash: v.string(),
  updated_at: v.number(),
};

// A file a user of the application uploaded (convex/uploads.ts, docs/uploads.md): its bytes are in `upload_chunks`
// under `generation`, as `encoding` text ("utf-8": the bytes are that text; "base64": anything else).
export const uploadFields = {
  tenant_id: v.string(),
  workspace_id: v.string(),
  upload_id: v.string(),
  filename: v.string(),
  kind: v.union(v.literal("cif"), v.literal("pw")),
  status: v.union(v.literal("pending"), v.literal("importing"), v.literal("imported"), v.literal("failed")),
  size: v.number(),
  sha256: v.string(),
  encoding: v.union(v.literal("utf-8"), v.literal("base64")),
  stored_size: v.number(),
  stored_sha256: v.string(),
  chunk_count: v.number(),
  generation: v.string(),
  uploaded_by: v.string(),
  structure_id: v.union(v.string(), v.null()),
  result_structure_id: v.union(v.string(), v.null()),
  node_uuid: v.union(v.string(), v.null()),
  message: v.union(v.string(), v.null()),
  claimed_by: v.union(v.string(), v.null()),
  // The current (or, once finished, the last) claim's token: only the importer that holds it may finish the upload,
  // and the same call sent again with it answers what the first did. Never returned.
  claim_token: v.union(v.string(), v.null()),
  claim_expires_at: v.union(v.number(), v.null()),
  attempts: v.number(),
  created_at: v.number(),
  updated_at: v.number(),
};

export default defineSchema({
  structures: defineTable(structureFields)
    .index("by_tenant_id_and_workspace_id_and_structure_id", ["tenant_id", "workspace_id", "structure_id"])
    .index("by_tenant_id_and_workspace_id_and_updated_at", ["tenant_id", "workspace_id", "updated_at"])
    // The ranges queryStructures (convex/optimade.ts) walks: one property of the summary (or updated_at), then the
    // structure id, so that every position in the index is a unique key a cursor can resume after. A record
    // without the property sorts first (Convex orders a missing value before every other value).
    .index("by_tenant_workspace_updated_at_structure", ["tenant_id", "workspace_id", "updated_at", "structure_id"])
    .index("by_tenant_workspace_nsites_structure", ["tenant_id", "workspace_id", "summary.nsites", "structure_id"])
    .index("by_tenant_workspace_nelements_structure", [
      "tenant_id",
      "workspace_id",
      "summary.nelements",
      "structure_id",
    ])
    .index("by_tenant_workspace_formula_reduced_structure", [
      "tenant_id",
      "workspace_id",
      "summary.chemical_formula_reduced",
      "structure_id",
    ]),

  // One document per committed record and element of its `summary.elements` ("structures that have element X",
  // OPTIMADE's `elements HAS "X"`), kept equal to the records by the mutations of convex/structures.ts that commit,
  // replace or delete a record. The second index is how those mutations find a record's rows.
  structure_elements: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    element: v.string(),
    structure_id: v.string(),
  })
    .index("by_tenant_workspace_element_structure", ["tenant_id", "workspace_id", "element", "structure_id"])
    .index("by_tenant_workspace_structure_element", ["tenant_id", "workspace_id", "structure_id", "element"]),

  structure_raw_chunks: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    generation: v.string(),
    part: partName,
    chunk_index: v.number(),
    text: v.string(),
  }).index("by_tenant_workspace_structure_generation_part_index", [
    "tenant_id",
    "workspace_id",
    "structure_id",
    "generation",
    "part",
    "chunk_index",
  ]),

  // Chunk sets that no committed record references: uploads in progress (`staging`) and replaced or deleted
  // versions (`garbage`). `collectGarbage` deletes their chunks page by page.
  structure_chunk_sets: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    generation: v.string(),
    state: v.union(v.literal("staging"), v.literal("garbage")),
    received: v.array(v.string()),
    updated_at: v.number(),
  })
    .index("by_tenant_id_and_workspace_id_and_structure_id_and_generation", [
      "tenant_id",
      "workspace_id",
      "structure_id",
      "generation",
    ])
    .index("by_tenant_id_and_workspace_id_and_updated_at", ["tenant_id", "workspace_id", "updated_at"]),

  executions: defineTable(executionFields)
    .index("by_tenant_id_and_workspace_id_and_process_uuid", ["tenant_id", "workspace_id", "process_uuid"])
    .index("by_tenant_id_and_workspace_id_and_modified_at", ["tenant_id", "workspace_id", "modified_at"]),

  // One document per (structure, process) pair of an execution record: "executions of this structure", most
  // recently modified first. `modified_at` is the execution's, kept equal to it on every update.
  execution_structures: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    structure_id: v.string(),
    process_uuid: v.string(),
    role: v.union(v.literal("input"), v.literal("output"), v.literal("both")),
    modified_at: v.number(),
  })
    .index("by_tenant_id_and_workspace_id_and_structure_id_and_modified_at", [
      "tenant_id",
      "workspace_id",
      "structure_id",
      "modified_at",
    ])
    .index("by_tenant_id_and_workspace_id_and_process_uuid", ["tenant_id", "workspace_id", "process_uuid"]),

  uploads: defineTable(uploadFields)
    .index("by_tenant_id_and_workspace_id_and_upload_id", ["tenant_id", "workspace_id", "upload_id"])
    .index("by_tenant_id_and_workspace_id_and_created_at", ["tenant_id", "workspace_id", "created_at"])
    // What claimUpload walks (oldest first), for a claim scoped to a workspace, to a tenant, or to none.
    .index("by_tenant_id_and_workspace_id_and_status_and_created_at", [
      "tenant_id",
      "workspace_id",
      "status",
      "created_at",
    ])
    .index("by_tenant_id_and_status_and_created_at", ["tenant_id", "status", "created_at"])
    .index("by_status_and_created_at", ["status", "created_at"])
    // A claim sent again (a retry) finds the upload it took.
    .index("by_claim_token", ["claim_token"]),

  // The bytes of uploads, apart from the structures' chunks: no structure reader, listing or garbage collection
  // of structures ever sees them. `generation` is the staging attempt the committed upload names.
  upload_chunks: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    upload_id: v.string(),
    generation: v.string(),
    chunk_index: v.number(),
    text: v.string(),
  }).index("by_tenant_workspace_upload_generation_index", [
    "tenant_id",
    "workspace_id",
    "upload_id",
    "generation",
    "chunk_index",
  ]),

  // Chunks of a large upload staged before createUpload commits it (`staging`), or staged by a creator that lost
  // to another one of the same bytes (`garbage`); collectUploadGarbage deletes them.
  upload_chunk_sets: defineTable({
    tenant_id: v.string(),
    workspace_id: v.string(),
    upload_id: v.string(),
    generation: v.string(),
    state: v.union(v.literal("staging"), v.literal("garbage")),
    received: v.array(v.number()),
    updated_at: v.number(),
  })
    .index("by_tenant_id_and_workspace_id_and_upload_id_and_generation", [
      "tenant_id",
      "workspace_id",
      "upload_id",
      "generation",
    ])
    .index("by_tenant_id_and_workspace_id_and_updated_at", ["tenant_id", "workspace_id", "updated_at"]),

  // One document: a random id created with the first write. A store whose data was lost (a wiped deployment, a
  // restarted in-memory test double) gets a new id, so projections remembered on AiiDA nodes are not trusted.
  structstore_instance: defineTable({
    instance_id: v.string(),
    created_at: v.number(),
  }),
});
