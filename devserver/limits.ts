// Convex limits that convex-test does not enforce (docs.convex.dev/production/state/limits), and the JSON writer
// that formats numbers the way a real deployment does.
import type { JSONValue, Value } from "convex/values";
import limits from "../convex/limits.json";

// Convex's limits as the project records them once, in convex/limits.json.
export const LIMITS = {
  documentBytes: limits.convex.documentBytes,
  arrayElements: limits.convex.arrayElements,
  fieldsPerObject: limits.convex.fieldsPerObject,
  documentDepth: limits.convex.documentDepth,
  valueDepth: limits.convex.valueDepth,
  requestBytes: limits.convex.requestBytes,
  returnBytes: limits.convex.returnBytes,
  // A deployment's default write throughput; above it writes wait, then fail with HTTP 429 (TooManyWrites).
  writeBytesPerSecond: limits.convex.writeBytesPerSecond,
};

const FIELD_NAME = /^[\x20-\x7e]+$/;

export class LimitError extends Error {}

/** Throw if `value` breaks Convex's limits on arrays, objects, field names or nesting. */
export function checkValue(value: Value, what: string, options: { document?: boolean } = {}) {
  const maxDepth = options.document ? LIMITS.documentDepth : LIMITS.valueDepth;
  const visit = (item: Value, path: string, depth: number) => {
    if (depth > maxDepth) throw new LimitError(`${what}: ${path} is nested deeper than ${maxDepth} levels`);
    if (Array.isArray(item)) {
      if (item.length > LIMITS.arrayElements) {
        throw new LimitError(`${what}: array ${path} has ${item.length} elements; the limit is ${LIMITS.arrayElements}`);
      }
      item.forEach((element, index) => visit(element, `${path}[${index}]`, depth + 1));
    } else if (item !== null && typeof item === "object" && !(item instanceof ArrayBuffer)) {
      const keys = Object.keys(item);
      if (keys.length > LIMITS.fieldsPerObject) {
        throw new LimitError(`${what}: object ${path} has ${keys.length} fields; the limit is ${LIMITS.fieldsPerObject}`);
      }
      for (const key of keys) {
        if (!FIELD_NAME.test(key) || key.startsWith("$")) {
          throw new LimitError(`${what}: field name ${JSON.stringify(key)} in ${path} is not a valid Convex field name`);
        }
        if (options.document && depth === 0 && key.startsWith("_")) {
          throw new LimitError(`${what}: top-level field ${JSON.stringify(key)} may not start with "_"`);
        }
        visit((item as Record<string, Value>)[key], `${path}.${key}`, depth + 1);
      }
    }
  };
  visit(value, "$", 0);
}

/** JSON text of a convex_encoded_json value, writing every float64 with a fraction or exponent, as Convex does. */
export function stringifyConvexJson(value: JSONValue): string {
  if (typeof value === "number") {
    if (Number.isInteger(value) && Math.abs(value) < 1e21) {
      return Object.is(value, -0) ? "-0.0" : `${value}.0`;
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(stringifyConvexJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${stringifyConvexJson(item)}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}
