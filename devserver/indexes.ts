// Index lookups for the local Convex server, so that its speed does not fall with the size of the tables.
//
// convex-test answers `withIndex` queries by scanning every document of every table, filtering and sorting: fine
// for unit tests, quadratic for a sync of 50,000 structures. This keeps, for each declared index and each prefix
// length of its fields, a map from the prefix's values to the ids of the committed documents, and narrows an index
// range whose leading fields are given by `.eq(...)` to those candidates (plus every document written in the open
// transaction). convex-test then filters and sorts the candidates exactly as before, so every query returns what it
// returned without this: nothing the project's functions compute changes. With `verify` on, every narrowed query is
// also run as a full scan and the two results are compared (the test suite runs the server that way).
import { compareValues, convexToJson, jsonToConvex } from "convex/values";

type Doc = Record<string, any> & { _id: string };
type RangeFilter = { type: string; fieldPath: string; value: any };
type Source = { type: string; indexName: string; range: RangeFilter[] };

function key(values: unknown[]): string {
  return JSON.stringify(values.map((value) => (value === undefined ? null : convexToJson(value as any))));
}

function fieldValue(doc: Doc, path: string): unknown {
  return path.split(".").reduce<any>((value, part) => (value === undefined || value === null ? undefined : value[part]), doc);
}

function tableOf(id: string, tables: string[]): string | undefined {
  // convex-test ids end with the table name (see DatabaseFake._generateId).
  return tables.find((table) => id.endsWith(table));
}

type State = {
  schema: Map<string, { indexes: { indexDescriptor: string; fields: string[] }[] }>;
  tables: string[];
  maps: Map<string, Map<string, Map<number, Map<string, Set<string>>>>>;
  idsOf: Map<string, Set<string>>;
  hint: { table: string; ids: Iterable<string> } | null;
};

const states = new WeakMap<object, State>();

function stateOf(db: any): State {
  let state = states.get(db);
  if (state !== undefined) return state;
  const schema = db._schema.tables;
  // Longest names first, so that a table whose name ends another's is not mistaken for it.
  const tables = [...schema.keys()].sort((a: string, b: string) => b.length - a.length);
  state = { schema, tables, maps: new Map(), idsOf: new Map(), hint: null };
  for (const table of tables) {
    state.idsOf.set(table, new Set());
    const byIndex = new Map<string, Map<number, Map<string, Set<string>>>>();
    for (const index of schema.get(table)!.indexes) {
      byIndex.set(index.indexDescriptor, new Map(index.fields.map((_: string, i: number) => [i + 1, new Map()])));
    }
    state.maps.set(table, byIndex);
  }
  states.set(db, state);
  for (const doc of Object.values(db._documents) as Doc[]) update(state, doc, true);
  return state;
}

function update(state: State, doc: Doc, add: boolean) {
  const table = tableOf(doc._id, state.tables);
  if (table === undefined) return;
  if (add) state.idsOf.get(table)!.add(doc._id);
  else state.idsOf.get(table)!.delete(doc._id);
  for (const index of state.schema.get(table)!.indexes) {
    const prefixes = state.maps.get(table)!.get(index.indexDescriptor)!;
    const values = index.fields.map((field) => fieldValue(doc, field));
    for (let length = 1; length <= values.length; length++) {
      const map = prefixes.get(length)!;
      const k = key(values.slice(0, length));
      let ids = map.get(k);
      if (add) {
        if (ids === undefined) map.set(k, (ids = new Set()));
        ids.add(doc._id);
      } else if (ids !== undefined) {
        ids.delete(doc._id);
        if (ids.size === 0) map.delete(k);
      }
    }
  }
}

/** Give every database of convex-test's `DatabaseFake` class index lookups (see the module comment). */
export function installIndexes(DatabaseFake: any, options: { verify?: boolean } = {}) {
  const proto = DatabaseFake.prototype;
  if (proto.__indexesInstalled) return;
  proto.__indexesInstalled = true;

  const commit = proto.commit;
  proto.commit = function (this: any, commitTs: unknown = null) {
    const state = stateOf(this);
    const top = this._writes.length === 1;
    const ids = top ? Object.keys(this._writes[this._writes.length - 1] ?? {}) : [];
    for (const id of ids) if (this._documents[id]) update(state, this._documents[id], false);
    commit.call(this, commitTs);
    for (const id of ids) if (this._documents[id]) update(state, this._documents[id], true);
  };

  const iterateDocs = proto._iterateDocs;
  proto._iterateDocs = function (this: any, tableName: string, callback: (doc: Doc) => void) {
    const state = stateOf(this);
    const candidates = state.hint !== null && state.hint.table === tableName ? state.hint.ids : state.idsOf.get(tableName);
    if (candidates === undefined) return iterateDocs.call(this, tableName, callback);
    const seen = new Set<string>();
    const pending: string[] = [];
    for (const level of this._writes) {
      for (const id of Object.keys(level)) if (tableOf(id, state.tables) === tableName) pending.push(id);
    }
    for (const id of [...candidates, ...pending]) {
      if (seen.has(id)) continue;
      seen.add(id);
      const doc = this.get(tableName, id);
      if (doc !== null) callback(doc);
    }
  };

  const resolve = proto._resolveQuerySource;
  proto._resolveQuerySource = function (this: any, query: { source: Source }) {
    const state = stateOf(this);
    const source = query.source;
    if (source.type !== "IndexRange") return resolve.call(this, query);
    const [table, indexName] = source.indexName.split(".");
    const index = state.schema.get(table)?.indexes.find((i) => i.indexDescriptor === indexName);
    const equal: unknown[] = [];
    if (index !== undefined) {
      for (const filter of source.range) {
        if (filter.type !== "Eq" || filter.fieldPath !== index.fields[equal.length]) break;
        equal.push(evaluate(filter.value));
      }
    }
    if (index === undefined || equal.length === 0) return resolve.call(this, query);
    state.hint = { table, ids: state.maps.get(table)!.get(indexName)!.get(equal.length)!.get(key(equal)) ?? [] };
    let narrowed;
    try {
      narrowed = resolve.call(this, query);
    } finally {
      state.hint = null;
    }
    if (options.verify) {
      const full = resolve.call(this, query);
      const same =
        full.sortedDocs.length === narrowed.sortedDocs.length &&
        full.sortedDocs.every((doc: Doc, i: number) => compareValues(doc as any, narrowed.sortedDocs[i]) === 0);
      if (!same) throw new Error(`index lookup of ${source.indexName} differs from a full scan`);
    }
    return narrowed;
  };
}

// A query bound as the syscall carries it: convex_encoded_json, with `$undefined` for undefined.
function evaluate(value: any): unknown {
  if (value !== null && typeof value === "object" && "$undefined" in value) return undefined;
  return jsonToConvex(value);
}
