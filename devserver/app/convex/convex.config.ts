// An app that mounts the structstore component twice: the app the local Convex server serves in the component
// layout (`--layout component`), and an example of mounting it in your own app (docs/convex-projection.md).
import { defineApp } from "convex/server";
import structstore from "../../../convex/convex.config";

const app = defineApp();
app.use(structstore); // components.structstore; the Python client: STRUCTURE_STORE_FUNCTION_PREFIX=structstore/
app.use(structstore, { name: "structstore2" }); // a second store, with its own tables
export default app;
