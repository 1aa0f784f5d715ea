import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Relative asset URLs: the same build is served at `/` (landing page, by the gateway) and at
// `/s/<id>/` (the IDE, by the session's agent through the gateway).
export default defineConfig({
  base: "./",
  resolve: {
    // Monaco's package exports only its JavaScript; its editor contributions import CSS by
    // relative path, which needs the files themselves.
    alias: {
      "monaco-esm": fileURLToPath(new URL("./node_modules/monaco-editor/esm/vs", import.meta.url)),
    },
  },
  build: {
    outDir: process.env.HUDDLE_WEB_OUT ?? "dist",
    emptyOutDir: true,
    chunkSizeWarningLimit: 8000,
    rollupOptions: {
      input: { index: "index.html", landing: "landing.html" },
    },
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
