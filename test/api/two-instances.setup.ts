// vitest globalSetup for running the episode and retry suites against two API instances behind
// the stack's one port (requests alternate between them, as between Lambda instances):
//   npx vitest run --config test/api/vitest.two-instances.config.ts
import type { TestProject } from "vitest/node";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import "../helpers/context.js";

let stack: LocalStack | undefined;
// The suites' state-limit cases expect a 413 past 3 MiB (the stack's own cap with its S3 bucket
// is 256 MiB, which test/api/restart.test.ts exercises).
const SUITE_ENV = { CODING_ENV_MAX_STATE_BYTES: String(3 * 1024 * 1024) };

export async function setup(project: TestProject): Promise<void> {
  stack = await startLocalStack({ port: 0, dataDir: null, env: SUITE_ENV, apiInstances: 2 });
  project.provide("baseUrl", stack.baseUrl);
  project.provide("dynamodb", {
    endpoint: stack.dynamodbEndpoint,
    tableName: stack.tableName,
    credentials: { ...stack.credentials },
  });
}

export async function teardown(): Promise<void> {
  await stack?.stop();
}
