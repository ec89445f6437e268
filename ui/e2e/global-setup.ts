/**
 * Runs once before the end-to-end tests: finds (or builds) the real
 * `vm-system` binary and Debian's Chromium, and checks the UI is built.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    binary: string;
    chromium: string;
    artifacts: string;
  }
}

const ui = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const root = path.resolve(ui, "..");

function findBinary(): string {
  const given = process.env.VM_SYSTEM_BIN;
  if (given) {
    if (!existsSync(given)) throw new Error(`VM_SYSTEM_BIN=${given} does not exist`);
    return given;
  }
  console.log("e2e: cargo build -p vm-system (set VM_SYSTEM_BIN to skip)");
  execFileSync("cargo", ["build", "-p", "vm-system"], { cwd: root, stdio: "inherit" });
  const target = process.env.CARGO_TARGET_DIR ?? path.join(root, "target");
  return path.join(target, "debug", process.platform === "win32" ? "vm-system.exe" : "vm-system");
}

function newestChange(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    const time = entry.isDirectory() ? newestChange(full) : statSync(full).mtimeMs;
    if (time > newest) newest = time;
  }
  return newest;
}

export default function setup(project: TestProject) {
  const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
  if (!existsSync(chromium)) {
    throw new Error(`no Chromium at ${chromium}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
  }
  const index = path.join(ui, "dist", "index.html");
  if (!existsSync(index)) throw new Error("ui/dist is missing: run `npm run build` in ui/ first");
  const stale = newestChange(path.join(ui, "src")) > statSync(index).mtimeMs;
  if (stale) throw new Error("ui/dist is older than ui/src: run `npm run build` in ui/ first");
  project.provide("binary", findBinary());
  project.provide("chromium", chromium);
  project.provide("artifacts", path.join(ui, "test-artifacts"));
}
