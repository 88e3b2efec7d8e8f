// vitest globalSetup of the self-contained project: a folder for the run's one bundled synthesis
// of the app (bundledApp in synth.ts), which every bundle test file reads, removed at the end.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
// Only for its declaration of `bundledAppDir`: loading synth.ts would load aws-cdk-lib, the app and
// cdk-nag into vitest's main process (~1.5 CPU-s) for nothing.
import type {} from "./synth.js";

let dir: string | undefined;

export function setup(project: TestProject): void {
  dir = mkdtempSync(join(tmpdir(), "coding-env-bundled-app-"));
  project.provide("bundledAppDir", dir);
}

export function teardown(): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}
