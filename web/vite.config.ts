/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Node globals are not in this project's types (the app runs in browsers); the config only needs the environment.
declare const process: { env: Record<string, string | undefined> };
const backend = process.env.CC_BACKEND_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: [
      // monaco-vim imports Monaco's pre-0.5x deep paths (esm/vs/...), which monaco-editor now exports
      // as "monaco-editor/<path>"; and its "browser" export is a UMD bundle that inlines nothing useful.
      { find: /^monaco-editor\/esm\/vs\/(.*)$/, replacement: "monaco-editor/$1" },
      { find: /^monaco-vim$/, replacement: new URL("./node_modules/monaco-vim/dist/index.mjs", import.meta.url).pathname },
    ],
  },
  server: {
    proxy: {
      "/api": { target: backend, changeOrigin: false, ws: true },
      "/ws": { target: backend, changeOrigin: false, ws: true },
    },
  },
  build: {
    outDir: "dist",
    // Monaco is one big lazily-loaded chunk by design; keep the warning for everything else.
    chunkSizeWarningLimit: 4096,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
