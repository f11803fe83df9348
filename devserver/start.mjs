// Entry point of the local Convex server: registers the loader hook (open-convex-test.mjs), then starts the server.
// Usage: CONVEX_DEPLOY_KEY=<key> npx tsx devserver/start.mjs [--port N] [--host H] [--layout standalone|component]
import { register } from 'node:module';

register('./open-convex-test.mjs', import.meta.url);
const { main } = await import('./server.ts');
await main();
