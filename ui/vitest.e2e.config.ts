import { defineConfig } from "vitest/config";

// End-to-end tests: the real daemon binary and a real headless Chromium.
// One file at a time (each starts its own daemon and browser).
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.ts"],
    environment: "node",
    globalSetup: ["e2e/global-setup.ts"],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["verbose"],
  },
});
