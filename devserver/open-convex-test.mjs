// A module loader hook: makes convex-test's in-memory database class importable, so the local Convex server can
// give it index lookups (devserver/indexes.ts). convex-test does not export the class; the hook appends an export
// to its module when Node loads it. Nothing else in convex-test changes.
export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (/\/convex-test\/dist\/index\.js$/.test(url)) {
    const source = `${result.source}\nexport { DatabaseFake as __DatabaseFake };\n`;
    return { ...result, format: 'module', source, shortCircuit: true };
  }
  return result;
}
