// convex/ is a Convex component: an app mounts it in its own convex/convex.config.ts with
//   import structstore from "<path to this folder>/convex.config";
//   app.use(structstore);                          // functions at components.structstore.<module>.<fn>
//   app.use(structstore, { name: "structstore2" }); // a second, separate store (its own tables)
// and exposes it to the Python client through thin internal functions (`npm run app-functions`). Its tables
// (schema.ts) are the component's own, apart from the app's. docs/convex-projection.md describes both layouts.
import { defineComponent } from "convex/server";

export default defineComponent("structstore");
