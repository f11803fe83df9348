// Index lookups for the local Convex server, so that its speed does not fall with the size of the tables.
//
// convex-test answers `withIndex` queries by scanning every document of every table, filtering and sorting: fine
// for unit tests, quadratic for a sync of 50,000 structures. This keeps, for each declared index and each prefix
// length of its fields, a map from the prefix's values to the ids of the committed documents, and narrows an index
// range whose leading fields are given by `.eq(...)` to those candidates (plus every document written in the open
// transaction). convex-test then filters and sorts the candidates exactly as before, so every query returns what it
// returned without this: nothing the project's functions compute changes.
//
// A query that sees only committed documents (every query function, and a mutation before it writes to the table)
// is served from a sorted copy of the index instead: each index's committed documents in index order, sorted once
// and then kept sorted by binary insertion of what each commit changes, so that a range is a slice found by binary
// search. A read then costs what it costs in Convex, O(log n + rows read), not a sort of the whole workspace, and
// the server's speed no longer falls with the size of a workspace (benchmarks/bench_read.py measures 2,000 against
// 20,000). With `verify` on, every narrowed query is also run as a full scan and the two results are compared (the
// test suite runs the server that way).
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

// One index of one table in index order (its fields, then _creationTime and _id, as convex-test sorts): the
// committed documents, sorted once and then kept sorted by binary insertion of what commits change.
// `changes` are the commits since the last query of the index, in order: [before, after] of each document.
type SortedIndex = { fields: string[]; docs: Doc[] | null; changes: [Doc | undefined, Doc | undefined][] };

type State = {
  schema: Map<string, { indexes: { indexDescriptor: string; fields: string[] }[] }>;
  tables: string[];
  maps: Map<string, Map<string, Map<number, Map<string, Set<string>>>>>;
  idsOf: Map<string, Set<string>>;
  hint: { table: string; ids: Iterable<string> } | null;
  sorted: Map<string, SortedIndex>;
};

const states = new WeakMap<object, State>();

function stateOf(db: any): State {
  let state = states.get(db);
  if (state !== undefined) return state;
  // A database without a schema (the app of the component layout, whose tables are its components') has no indexes.
  const schema = db._schema?.tables ?? new Map();
  // Longest names first, so that a table whose name ends another's is not mistaken for it.
  const tables = [...schema.keys()].sort((a: string, b: string) => b.length - a.length);
  state = { schema, tables, maps: new Map(), idsOf: new Map(), hint: null, sorted: new Map() };
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
    const before = ids.map((id) => this._documents[id] as Doc | undefined);
    for (const doc of before) if (doc) update(state, doc, false);
    commit.call(this, commitTs);
    ids.forEach((id, i) => {
      const after = this._documents[id] as Doc | undefined;
      if (after) update(state, after, true);
      const table = tableOf(id, state.tables);
      if (table === undefined || before[i] === after) return;
      for (const index of state.schema.get(table)!.indexes) {
        const sorted = state.sorted.get(`${table}.${index.indexDescriptor}`);
        if (sorted === undefined || sorted.docs === null) continue;
        sorted.changes.push([before[i], after]);
      }
    });
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

  // convex-test hands out a query's results with `Array.shift()`, which copies the rest of a large array on each
  // call: a cursor over the array instead (the same results, in the same order).
  proto.startQuery = function (this: any, query: unknown) {
    const id = this._nextQueryId;
    this._queryResults[id] = { results: this._evaluateQuery(query), next: 0 };
    this._nextQueryId += 1;
    return id;
  };
  proto.queryNext = function (this: any, queryId: number) {
    const query = this._queryResults[queryId];
    if (query === undefined) throw new Error("Bad queryId");
    if (query.next >= query.results.length) return { value: null, done: true };
    return { value: query.results[query.next++], done: false };
  };

  const resolve = proto._resolveQuerySource;
  proto._resolveQuerySource = function (this: any, query: { source: Source }) {
    const state = stateOf(this);
    const source = query.source;
    if (source.type !== "IndexRange") return resolve.call(this, query);
    const [table, indexName] = source.indexName.split(".");
    const index = state.schema.get(table)?.indexes.find((i) => i.indexDescriptor === indexName);
    if (index !== undefined && !pendingIn(this, state, table)) {
      // Only committed documents: the range is a slice of the sorted index, found by binary search, in
      // O(log n + k) instead of filtering and sorting the whole table (or workspace) on every call.
      const sorted = sortedIndex(this, state, table, index);
      let slice = rangeOf(sorted, source.range.map((filter) => ({ ...filter, value: evaluate(filter.value) })));
      if ((query as any).source.order === "desc") slice = slice.reverse();
      // convex-test's own resolution over no documents gives the query's filter, limit, order and sort fields.
      state.hint = { table, ids: [] };
      let base;
      try {
        base = resolve.call(this, query);
      } finally {
        state.hint = null;
      }
      const narrowed = { ...base, sortedDocs: slice };
      if (options.verify) check(this, resolve, query, narrowed, source.indexName);
      return narrowed;
    }
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
    if (options.verify) check(this, resolve, query, narrowed, source.indexName);
    return narrowed;
  };
}

function check(db: any, resolve: any, query: unknown, narrowed: { sortedDocs: Doc[] }, indexName: string) {
  const full = resolve.call(db, query);
  const same =
    full.sortedDocs.length === narrowed.sortedDocs.length &&
    full.sortedDocs.every((doc: Doc, i: number) => compareValues(doc as any, narrowed.sortedDocs[i] as any) === 0);
  if (!same) throw new Error(`index lookup of ${indexName} differs from a full scan`);
}

/** Whether the open transaction has writes to `table` (then the slow path sees them; the sorted index does not). */
function pendingIn(db: any, state: State, table: string): boolean {
  for (const level of db._writes) {
    for (const id of Object.keys(level)) if (tableOf(id, state.tables) === table) return true;
  }
  return false;
}

function compareDocs(fields: string[], a: Doc, b: Doc): number {
  for (const field of fields) {
    const order = compareValues(fieldValue(a, field) as any, fieldValue(b, field) as any);
    if (order !== 0) return order;
  }
  return 0;
}

/** The first position in `docs` (sorted) for which `before(doc)` is false. */
function partition(docs: Doc[], before: (doc: Doc) => boolean): number {
  let low = 0;
  let high = docs.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (before(docs[middle])) low = middle + 1;
    else high = middle;
  }
  return low;
}

function sortedIndex(db: any, state: State, table: string, index: { indexDescriptor: string; fields: string[] }) {
  const name = `${table}.${index.indexDescriptor}`;
  let sorted = state.sorted.get(name);
  if (sorted === undefined) {
    sorted = { fields: [...index.fields, "_creationTime", "_id"], docs: null, changes: [] };
    state.sorted.set(name, sorted);
  }
  const fields = sorted.fields;
  const compare = (a: Doc, b: Doc) => compareDocs(fields, a, b);
  if (sorted.docs !== null && sorted.changes.length > sorted.docs.length / 4 + 64) {
    sorted.docs = null; // many changes: sorting again is cheaper than inserting one by one
  }
  if (sorted.docs === null) {
    sorted.docs = [...state.idsOf.get(table)!].map((id) => db._documents[id] as Doc).sort(compare);
  } else {
    // In commit order: a document changed twice is removed as it was, inserted as it became, and so on.
    const docs = sorted.docs;
    for (const [before, after] of sorted.changes) {
      if (before !== undefined) {
        let at = partition(docs, (other) => compare(other, before) < 0);
        if (docs[at] !== before) at = docs.indexOf(before);
        if (at >= 0) docs.splice(at, 1);
      }
      if (after !== undefined) docs.splice(partition(docs, (other) => compare(other, after) < 0), 0, after);
    }
  }
  sorted.changes = [];
  return sorted;
}

/** The documents of the index range `range` (equalities on a prefix of the fields, then at most one lower and one
 * upper bound on the next field), in ascending index order. */
function rangeOf(sorted: SortedIndex, range: RangeFilter[]): Doc[] {
  const equal = range.filter((filter) => filter.type === "Eq").map((filter) => filter.value);
  const bounds = range.filter((filter) => filter.type !== "Eq");
  const prefix = (doc: Doc, values: unknown[]) => {
    for (let i = 0; i < values.length; i++) {
      const order = compareValues(fieldValue(doc, sorted.fields[i]) as any, values[i] as any);
      if (order !== 0) return order;
    }
    return 0;
  };
  const lower = bounds.find((filter) => filter.type === "Gt" || filter.type === "Gte");
  const upper = bounds.find((filter) => filter.type === "Lt" || filter.type === "Lte");
  const docs = sorted.docs!;
  const start = lower
    ? partition(docs, (doc) => prefix(doc, [...equal, lower.value]) < (lower.type === "Gt" ? 1 : 0))
    : partition(docs, (doc) => prefix(doc, equal) < 0);
  const end = upper
    ? partition(docs, (doc) => prefix(doc, [...equal, upper.value]) < (upper.type === "Lt" ? 0 : 1))
    : partition(docs, (doc) => prefix(doc, equal) <= 0);
  return docs.slice(start, Math.max(start, end));
}

// A query bound as the syscall carries it: convex_encoded_json, with `$undefined` for undefined.
function evaluate(value: any): unknown {
  if (value !== null && typeof value === "object" && "$undefined" in value) return undefined;
  return jsonToConvex(value);
}
