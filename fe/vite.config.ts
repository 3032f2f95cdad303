import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

// `vite build` makes the desktop console (fe/dist/web, served at /ui/);
// `vite build --mode h5` the mobile layout of the same app (fe/dist/h5, at /ui/h5/).
export default defineConfig(({ mode }) => ({
  plugins: [react()],
  define: { __LAYOUT__: JSON.stringify(mode === "h5" ? "h5" : "web") },
  build: { emptyOutDir: true, assetsInlineLimit: 0, sourcemap: false },
  test: { environment: "jsdom", include: ["src/**/*.test.tsx", "src/**/*.test.ts"] },
}));
