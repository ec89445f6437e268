import { defineConfig } from "vitest/config";

// Unit tests of the UI's pure logic (reading events, the SSE parser and follower, the console's
// transcript, history, formatting).
export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
