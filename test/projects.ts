// Which test files run on which stack: vitest.config.ts makes its projects of these lists, and a
// suite that leaves part of its work to another project checks the list names it.

// Suites that read the shared local stack (`inject("baseUrl")`): they run in the "stack" project,
// whose global setup starts one real stack (in-memory DynamoDB, the Python executor, the API).
export const onSharedStack = [
  "test/api/**",
  "test/python-client/**",
  "test/python-sdk/**",
  "test/web/**",
  "sdk/test/**",
];
// The episode and retry suites against two API instances behind one port, as API Gateway spreads
// requests over many Lambda instances: the API's, the Python SDK's retries and the page's lost
// answer (a retry reaches the other instance). The front alternates strictly, so an episode's
// consecutive requests never meet the same instance there: the episode suite runs on the shared
// one-instance stack too (an instance's own paths, such as its cached snapshot); the retry and
// concurrency suites only on two.
export const onTwoInstances = [
  "test/api/episodes.test.ts",
  "test/api/concurrency.test.ts",
  "test/api/two-instances.test.ts",
  "test/python-sdk/retries-two-instances.test.ts",
  "test/web/lost-answer.test.ts",
];
