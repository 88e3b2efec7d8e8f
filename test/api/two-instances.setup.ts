// vitest globalSetup for running the episode and retry suites against two API instances behind
// the stack's one port (requests alternate between them, as between Lambda instances):
//   npx vitest run --config test/api/vitest.two-instances.config.ts
import type { TestProject } from "vitest/node";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import "../helpers/context.js";

let stack: LocalStack | undefined;

export async function setup(project: TestProject): Promise<void> {
  stack = await startLocalStack({ port: 0, dataDir: null, apiInstances: 2 });
  project.provide("baseUrl", stack.baseUrl);
}

export async function teardown(): Promise<void> {
  await stack?.stop();
}
