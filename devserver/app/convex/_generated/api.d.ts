/* eslint-disable */
// Untyped references, as _generated/api.js gives them (`npx convex dev` in a real app writes typed ones).
import type { AnyApi, AnyComponents } from "convex/server";

export declare const api: AnyApi;
export declare const internal: AnyApi;
export declare const components: AnyComponents;
