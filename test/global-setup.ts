// vitest globalSetup: one real local stack (in-memory dynalite, the Python executor, the API) on a
// free port for the whole run. Tests read its URL with `inject("baseUrl")`.
import type { TestProject } from "vitest/node";
import { type LocalStack, startLocalStack } from "../functions/src/local/stack.js";
import "./helpers/context.js";

let stack: LocalStack | undefined;

export async function setup(project: TestProject): Promise<void> {
  stack = await startLocalStack({ port: 0, dataDir: null });
  project.provide("baseUrl", stack.baseUrl);
}

export async function teardown(): Promise<void> {
  await stack?.stop();
}
