import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// During `npm run dev` the API and Swagger UI come from a running daemon
// (VM_SYSTEM_URL, default http://127.0.0.1:3210); in production the daemon
// serves the built files itself.
const daemon = process.env.VM_SYSTEM_URL ?? "http://127.0.0.1:3210";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 900,
  },
  server: {
    proxy: {
      "/api": daemon,
      "/docs": daemon,
    },
  },
});
