// How the functions of this folder are built: one line decides whether they are a component's API or a standalone
// app's internal functions. Every module of convex/ builds its functions with `storeQuery` and `storeMutation`
// (and `storeAction`; never `query`/`internalQuery` directly), so one source serves both layouts (docs/convex-projection.md):
//
// - "component" (this folder as it is): convex/ is mounted by an app (`app.use(structstore)` in the app's
//   convex.config.ts, this folder's convex.config.ts defines the component). Its functions are public *to the app
//   that mounts it* (a component's API): no client can reach them; the app's thin internal functions
//   (`npm run app-functions`) call them with `ctx.runQuery(components.<name>.<module>.<fn>, args)`.
// - "standalone": the files are copied into an app's own convex/ folder; the functions must then be internal
//   (callable with the deploy key, never by a browser). `npm run app-functions -- --standalone <app>/convex` copies
//   them and writes this line as "standalone"; a copy made by hand must change it too.
import {
  actionGeneric,
  internalActionGeneric,
  internalMutationGeneric,
  internalQueryGeneric,
  mutationGeneric,
  queryGeneric,
} from "convex/server";
import type { internalAction, internalMutation, internalQuery } from "./_generated/server";

export const LAYOUT: "component" | "standalone" = "component";

/** A query of the store: public to the mounting app in a component, internal when standalone. */
export const storeQuery = (LAYOUT === "component" ? queryGeneric : internalQueryGeneric) as typeof internalQuery;
/** A mutation of the store: public to the mounting app in a component, internal when standalone. */
export const storeMutation = (LAYOUT === "component" ? mutationGeneric : internalMutationGeneric) as typeof internalMutation;
/** An action of the store: public to the mounting app in a component, internal when standalone. */
export const storeAction = (LAYOUT === "component" ? actionGeneric : internalActionGeneric) as typeof internalAction;
