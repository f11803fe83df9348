// The local Convex server: an IN-MEMORY TEST DOUBLE of a Convex deployment, for tests and the demo.
//
// It serves Convex's HTTP API (POST /api/query, /api/mutation, /api/action; GET /version) over this project's own
// convex/ functions, with `convex-test` as the engine, and enforces what convex-test does not: the admin key,
// public vs internal visibility, argument and return value limits, and the 1 MiB document size. It keeps nothing
// on disk, runs one function at a time, and says nothing about the speed of a real Convex deployment.
//
// Usage: CONVEX_DEPLOY_KEY=<key> npx tsx devserver/start.mjs [--port N] [--host H] [--layout standalone|component]
// It prints one JSON line on stdout when it listens: {"url": "...", "kind": "local-convex-test-double"}.
//
// Two routes are not part of Convex's API: `GET|POST /stats` (calls and bytes seen; POST also zeroes them) and
// `POST /reset` with the admin key, which wipes every table as a restart would (a new, empty deployment at the same
// URL: the next client to ask gets a new instance id) without stopping the process.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { randomBytes, timingSafeEqual } from "node:crypto";
// `__DatabaseFake` is exported by the loader hook in open-convex-test.mjs (start the server with start.mjs).
import { convexTest, __DatabaseFake as DatabaseFake } from "convex-test";
import { TransactionMetricsTracker } from "convex-test/dist/transactionMetrics.js";
import { convexToJson, jsonToConvex, type Value } from "convex/values";
import { makeFunctionReference } from "convex/server";
import schema from "../convex/schema";
import { installIndexes } from "./indexes";
import { LIMITS, checkValue, stringifyConvexJson } from "./limits";
import { newStats, sinkReply } from "./sink";

type Modules = Record<string, () => Promise<any>>;

/** The modules of a Convex folder (its `_generated/` included, every .ts but tests), keyed by their path from this
 * file as `import.meta.glob` would give them: a module added to the folder is served without a change here. */
function modulesOf(folder: string): Modules {
  const root = fileURLToPath(new URL(folder, import.meta.url));
  const found: Modules = {};
  const walk = (dir: string, rel: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.isDirectory()) {
        if (entry.name !== "testdata" && entry.name !== "node_modules") walk(join(dir, entry.name), `${rel}${entry.name}/`);
      } else if (/\.(ts|js)$/.test(entry.name) && !/\.(test|d)\.ts$/.test(entry.name)) {
        const url = pathToFileURL(join(dir, entry.name)).href;
        found[`${folder}${rel}${entry.name}`] = () => import(url);
      }
    }
  };
  walk(root, "");
  return found;
}

/** The component's modules (convex/, as the standalone layout too). */
const COMPONENT_FOLDER = "../convex/";
/** The app the component layout serves: devserver/app/convex mounts the component once per sub-folder of its own
 * (`structstore/`, `structstore2/`), each holding the app-side functions `npm run app-functions` writes. */
const APP_FOLDER = "./app/convex/";
const modules = modulesOf(COMPONENT_FOLDER);

// Convex rejects a document over 1 MiB; convex-test measures each written document but does not enforce it.
const originalTrackWrite = TransactionMetricsTracker.prototype.trackWrite;
TransactionMetricsTracker.prototype.trackWrite = function (docSizeBytes: number) {
  if (docSizeBytes > LIMITS.documentBytes) {
    throw new Error(`Document is too large (${docSizeBytes} bytes; the limit is ${LIMITS.documentBytes} bytes)`);
  }
  return originalTrackWrite.call(this, docSizeBytes);
};

type Kind = "query" | "mutation" | "action";

/** A function that cannot be called (missing, of another kind, internal): HTTP 200 with an error. */
class FunctionError extends Error {}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export type ServerOptions = {
  adminKey: string;
  port?: number;
  host?: string;
  /** Check every index lookup against a full table scan (tests). */
  verifyIndexes?: boolean;
  /** Bytes of mutation arguments per second the deployment accepts (Convex's default: 4 MiB/s); 0: no limit. */
  writeBytesPerSecond?: number;
  /** Answer as the counting sink (no database work) instead of running the functions. */
  sink?: boolean;
  /** "standalone" (default): convex/'s functions as an app's own, all internal, at `<module>:<fn>`. "component": the
   * app of devserver/app/convex, which mounts convex/ as a component under each of its sub-folders' names, its
   * internal functions at `<name>/<module>:<fn>` calling `components.<name>.<module>.<fn>`. */
  layout?: Layout;
};

export type Layout = "standalone" | "component";

/** A write budget refilled at `rate` bytes per second, holding at most one second of writes. */
class WriteBudget {
  private tokens: number;
  private last = performance.now();
  constructor(private readonly rate: number) {
    this.tokens = rate;
  }
  private refill() {
    const now = performance.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }
  /** Take `bytes`, waiting up to `patienceMs` (the backend's internal retries); false if they never became free. */
  async take(bytes: number, patienceMs: number): Promise<boolean> {
    const deadline = performance.now() + patienceMs;
    for (;;) {
      this.refill();
      if (this.tokens >= bytes) {
        this.tokens -= bytes;
        return true;
      }
      const wait = ((bytes - this.tokens) / this.rate) * 1000;
      if (bytes > this.rate || performance.now() + wait > deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

// How long a write over the throughput waits for budget before the answer is 429 (the backend's internal retries).
const WRITE_PATIENCE_MS = 250;

function requestId(): string {
  return randomBytes(8).toString("hex");
}

export async function startServer(options: ServerOptions) {
  const layout = options.layout ?? "standalone";
  if (layout !== "standalone" && layout !== "component") throw new Error(`unknown layout ${JSON.stringify(layout)} (standalone or component)`);
  const served = layout === "component" ? modulesOf(APP_FOLDER) : modules;
  const root = layout === "component" ? APP_FOLDER : COMPONENT_FOLDER;
  const mounts = layout === "component" ? mountsOf(APP_FOLDER) : [];
  const newDatabase = () => {
    if (layout === "standalone") return convexTest({ schema, modules, transactionLimits: true });
    const test = convexTest({ modules: served, transactionLimits: true });
    for (const name of mounts) test.registerComponent(name, schema, modules);
    return test;
  };
  let t = newDatabase();
  installDocumentChecks();
  installIndexes(DatabaseFake, { verify: options.verifyIndexes });
  const adminKey = Buffer.from(options.adminKey);
  // The counting sink measures the client: no write limit unless asked for.
  const writeRate = options.writeBytesPerSecond ?? (options.sink ? 0 : LIMITS.writeBytesPerSecond);
  let budget = writeRate > 0 ? new WriteBudget(writeRate) : null;
  const stats = newStats();
  let queue: Promise<unknown> = Promise.resolve();

  function isAdmin(header: string | undefined): boolean {
    if (header === undefined) return false;
    const match = /^Convex (.+)$/.exec(header);
    if (match === null) throw new HttpError(401, "BadAdminKey", "The Authorization header is not a Convex admin key");
    const given = Buffer.from(match[1]);
    if (given.length !== adminKey.length || !timingSafeEqual(given, adminKey)) {
      throw new HttpError(401, "BadAdminKey", "The provided admin key was invalid for this instance");
    }
    return true;
  }

  async function resolve(path: string, kind: Kind, admin: boolean) {
    const match = /^([A-Za-z0-9_/]+)(?:\.js)?:([A-Za-z_][A-Za-z0-9_]*)$/.exec(path);
    const file = match === null ? undefined : `${root}${match[1]}.ts`;
    const fn = file !== undefined && file in served ? (await served[file]())[match![2]] : undefined;
    const isKind = fn && { query: fn.isQuery, mutation: fn.isMutation, action: fn.isAction }[kind];
    // Standalone, the functions are internal (convex/layout.ts: a standalone copy says "standalone"); this server
    // serves convex/ as it is (the component's build, public to a mounting app), so it treats them as internal.
    const internal = fn && (fn.isInternal || layout === "standalone");
    if (!isKind || (internal && !admin)) {
      // A real deployment answers HTTP 200 with an error for a function that is missing, of another kind, or
      // internal to a caller without the admin key.
      throw new FunctionError(`Could not find public function for '${path}'. Did you forget to run \`npx convex dev\`?`);
    }
    return { reference: makeFunctionReference<any>(`${match![1]}:${match![2]}`), name: match![2] };
  }

  async function run(kind: Kind, body: any, admin: boolean) {
    if (body === null || typeof body !== "object" || typeof body.path !== "string") {
      throw new HttpError(400, "BadJsonBody", "The request body must be a JSON object with a string `path`");
    }
    if (body.format !== undefined && body.format !== "convex_encoded_json" && body.format !== "json") {
      throw new HttpError(400, "BadJsonBody", `Unsupported format ${JSON.stringify(body.format)}`);
    }
    const { reference, name } = await resolve(body.path, kind, admin);
    let args: Value = Array.isArray(body.args) ? body.args[0] ?? {} : body.args ?? {};
    args = jsonToConvex(args as any);
    checkValue(args, "arguments");
    stats.calls[body.path] = (stats.calls[body.path] ?? 0) + 1;
    if (options.sink) return stringifyConvexJson(convexToJson(sinkReply(name, args)));
    const call = () =>
      kind === "query" ? t.query(reference, args as any) : kind === "mutation" ? t.mutation(reference, args as any) : t.action(reference, args as any);
    // One function at a time: convex-test has no concurrency control, a real deployment serializes conflicts.
    const result = queue.then(call, call);
    queue = result.catch(() => undefined);
    const value = await result;
    checkValue(value ?? null, "return value");
    const encoded = stringifyConvexJson(convexToJson(value ?? null));
    if (encoded.length > LIMITS.returnBytes) throw new Error("Function return value is too large");
    return encoded;
  }

  function send(res: ServerResponse, status: number, text: string) {
    res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "GET" && url.pathname === "/version") {
      return send(res, 200, JSON.stringify(options.sink ? "counting-sink" : "local-convex-test-double"));
    }
    if (url.pathname === "/stats") {
      // Not part of Convex's API: the calls and bytes seen so far (benchmarks); POST resets them.
      const text = JSON.stringify(stats);
      if (req.method === "POST") Object.assign(stats, newStats());
      return send(res, 200, text);
    }
    if (req.method === "POST" && url.pathname === "/reset") {
      // Not part of Convex's API: what a restart does to the data, without a restart. Only for the admin.
      try {
        if (!isAdmin(req.headers.authorization)) throw new HttpError(401, "MissingAdminKey", "POST /reset needs the admin key");
      } catch (error) {
        const e = error as HttpError;
        return send(res, e.status, JSON.stringify({ code: e.code, message: e.message }));
      }
      // After the function that is running, before any that comes later: the same queue as the functions.
      const wipe = () => {
        t = newDatabase();
        budget = writeRate > 0 ? new WriteBudget(writeRate) : null;
        Object.assign(stats, newStats());
      };
      const done = queue.then(wipe, wipe);
      queue = done.catch(() => undefined);
      await done;
      return send(res, 200, JSON.stringify({ status: "reset" }));
    }
    const kind = /^\/api\/(query|mutation|action)$/.exec(url.pathname)?.[1] as Kind | undefined;
    if (req.method !== "POST" || kind === undefined) {
      return send(res, 404, JSON.stringify({ code: "NotFound", message: `No route ${req.method} ${url.pathname}` }));
    }
    try {
      const client = req.headers["convex-client"];
      if (client !== undefined && !/^[A-Za-z0-9_.-]+-\d+\.\d+\.\d+/.test(String(client))) {
        throw new HttpError(400, "InvalidConvexClient", `Convex-Client header ${JSON.stringify(client)} is not name-version`);
      }
      const admin = isAdmin(req.headers.authorization);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += chunk.length;
        if (size > LIMITS.requestBytes) {
          throw new HttpError(413, "ArgumentsTooLarge", `Request body is larger than ${LIMITS.requestBytes} bytes`);
        }
        chunks.push(chunk);
      }
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        throw new HttpError(400, "BadJsonBody", "The request body is not valid JSON");
      }
      stats.bytes_in += size;
      if (kind === "mutation" && budget !== null && !(await budget.take(size, WRITE_PATIENCE_MS))) {
        // Above the deployment's write throughput the backend retries internally for a moment, then gives up.
        stats.throttled += 1;
        throw new HttpError(429, "TooManyWrites", `[Request ID: ${requestId()}] Too many writes: over ${writeRate} bytes/s`);
      }
      let value: string;
      try {
        value = await run(kind, body, admin);
      } catch (error) {
        if (error instanceof HttpError) throw error;
        // A failed function: HTTP 560 with the error message and, for ConvexError, its data; a function that
        // cannot be found: HTTP 200. Messages start with the request id, as a deployment's do.
        const data = (error as { data?: Value }).data;
        const reply: Record<string, unknown> = {
          status: "error",
          errorMessage: `[Request ID: ${requestId()}] ${error instanceof Error ? error.message : String(error)}`,
          logLines: [],
        };
        if (data !== undefined) reply.errorData = convexToJson(data);
        return send(res, error instanceof FunctionError ? 200 : 560, stringifyConvexJson(reply as any));
      }
      const reply = `{"status":"success","value":${value},"logLines":[]}`;
      stats.bytes_out += Buffer.byteLength(reply);
      return send(res, 200, reply);
    } catch (error) {
      if (error instanceof HttpError) {
        return send(res, error.status, JSON.stringify({ code: error.code, message: error.message }));
      }
      return send(res, 500, JSON.stringify({ code: "InternalServerError", message: String(error) }));
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error) => {
      if (!res.headersSent) send(res, 500, JSON.stringify({ code: "InternalServerError", message: String(error) }));
    });
  });
  server.keepAliveTimeout = 30_000;
  return new Promise<{ url: string; close: () => Promise<void> }>((resolvePromise) => {
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : options.port;
      resolvePromise({
        url: `http://${options.host ?? "127.0.0.1"}:${port}`,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

/** The names the app of `folder` mounts the component under: its sub-folders (each holds that mount's functions). */
function mountsOf(folder: string): string[] {
  const root = fileURLToPath(new URL(folder, import.meta.url));
  return readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && entry.name !== "_generated")
    .map((entry) => entry.name)
    .sort();
}

// Arrays, nesting and field names of every document written are checked before the write reaches convex-test.
let documentChecksInstalled = false;
function installDocumentChecks() {
  if (documentChecksInstalled) return;
  documentChecksInstalled = true;
  const convexGlobal = (globalThis as any).Convex;
  const inner = Object.getOwnPropertyDescriptor(convexGlobal, "asyncSyscall")!.get!;
  Object.defineProperty(convexGlobal, "asyncSyscall", {
    get() {
      const asyncSyscall = inner.call(convexGlobal);
      return async (op: string, jsonArgs: string) => {
        if (op === "1.0/insert" || op === "1.0/shallowMerge" || op === "1.0/replace") {
          const args = JSON.parse(jsonArgs);
          checkValue(jsonToConvex(args.value), "document", { document: true });
        }
        return await asyncSyscall(op, jsonArgs);
      };
    },
  });
}

export async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "0" },
      host: { type: "string", default: "127.0.0.1" },
      sink: { type: "boolean", default: false },
      layout: { type: "string", default: "standalone" },
    },
  });
  const adminKey = process.env.CONVEX_DEPLOY_KEY;
  if (!adminKey) {
    console.error("error: set CONVEX_DEPLOY_KEY to the admin key clients must present");
    process.exit(2);
  }
  const rate = process.env.STRUCTSTORE_WRITE_BYTES_PER_SECOND;
  const sink = values.sink === true;
  const { url, close } = await startServer({
    adminKey,
    port: Number(values.port),
    host: values.host,
    verifyIndexes: process.env.STRUCTSTORE_VERIFY_INDEXES === "1",
    writeBytesPerSecond: rate === undefined || rate === "" ? undefined : Number(rate),
    sink,
    layout: values.layout as Layout,
  });
  const kind = sink ? "counting-sink" : "local-convex-test-double";
  const note = sink ? "answers as an empty deployment, stores nothing, counts calls and bytes (GET /stats)" : "in-memory test double of Convex; data is lost on exit";
  console.log(JSON.stringify({ url, kind, note, layout: values.layout }));
  const stop = () => close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}


