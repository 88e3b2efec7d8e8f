// The order vitest starts the test files in: project by project, each project's files longest
// first.
//
// A worker process runs one file after another (`isolate: false`) only while the next file in the
// queue is of its project; otherwise vitest ends it and starts a new process for the next file,
// which imports vitest, the AWS SDK, playwright-core... again (0.5-2 CPU-s each). The long files
// first across the projects made 20 worker processes in a full run (2026-12-02); project by
// project it is 9: three per project.
//
// Longest first within a project keeps the run from ending on a long file: the long files start
// while the rest of their project's files are queued behind them. The projects go in the order of
// PROJECT_ORDER: the self-contained files first (the longest ones, which start stacks, executors
// and governors of their own, start at once), the stack's many short files last (they fill the
// workers while the last long ones end).
//
// How long a file takes: vitest's own timing of the last run when it has one, else the hints below
// (a fresh clone has no timings).
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/** Projects of vitest.config.ts in the order their files run; any other project comes last. */
const PROJECT_ORDER = ["self-contained", "two-instances", "stack"];

/**
 * Seconds of wall time on the project's 2-core machine (2026-12-02, a full run at 3 workers), for
 * the files that take longest; any other counts as 0 s. Only the order matters.
 */
const EXPECTED_SECONDS: Readonly<Record<string, number>> = {
  "test/python-sdk/python-sdk.test.ts": 35,
  "test/api/stack.test.ts": 28,
  "test/api/stack-parts.test.ts": 25,
  "test/isolation/executor-governor.test.ts": 25,
  "test/isolation/admission.test.ts": 22,
  "test/tenancy/hosted-api.test.ts": 18,
  "test/api/episodes.test.ts": 18,
  "test/web/humanagent-explains.test.ts": 18,
  "infra/test/ws-bundle.test.ts": 16,
  "test/api/fuzz.test.ts": 16,
  "test/web/python-editor.test.ts": 16,
  "sdk/test/package.test.ts": 15,
  "sdk/test/examples.test.ts": 15,
  "test/web/humanagent.test.ts": 15,
  "test/web/humanagent-access.test.ts": 11,
  "test/web/episodes-list.test.ts": 11,
  "test/isolation/lambda-mode-concurrency.test.ts": 10,
  "test/web/files.test.ts": 10,
  "test/web/accessibility.test.ts": 10,
  "sdk/test/errors.test.ts": 10,
  "test/api/errors.test.ts": 10,
  "infra/test/api-bundle.test.ts": 10,
};

export class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const root = this.ctx.config.root;
    const key = (spec: TestSpecification): string => `${spec.project.name}:${relative(root, spec.moduleId)}`;
    const expectedMs = (spec: TestSpecification): number => {
      const last = this.ctx.cache.getFileTestResults(key(spec));
      if (last) return last.duration;
      return (EXPECTED_SECONDS[relative(root, spec.moduleId)] ?? 0) * 1000;
    };
    const size = (spec: TestSpecification): number => this.ctx.cache.getFileStats(key(spec))?.size ?? 0;
    const rank = (spec: TestSpecification): number => {
      const index = PROJECT_ORDER.indexOf(spec.project.name);
      return index === -1 ? PROJECT_ORDER.length : index;
    };
    return [...files].sort(
      (a, b) =>
        rank(a) - rank(b) ||
        a.project.name.localeCompare(b.project.name) ||
        expectedMs(b) - expectedMs(a) ||
        size(b) - size(a),
    );
  }
}
