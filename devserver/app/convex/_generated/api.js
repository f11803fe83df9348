/* eslint-disable */
// What `npx convex codegen` writes for an app without a typed API (the local server needs no deployment).
import { anyApi, componentsGeneric } from "convex/server";

export const api = anyApi;
export const internal = anyApi;
export const components = componentsGeneric();
