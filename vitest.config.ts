import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "edge-runtime",
    include: ["convex/**/*.test.ts", "devserver/**/*.test.ts", "viewer/**/*.test.js"],
    server: { deps: { inline: ["convex-test"] } },
  },
});
