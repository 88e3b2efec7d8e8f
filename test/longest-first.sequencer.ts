// vitest's sequencer runs the projects one after another ("self-contained", then "stack", then
// "two-instances"), so the slowest files of the later projects (the browser and Python SDK suites)
// started only once every self-contained file had, and the run ended on them. This one starts the
// long files first, longest first, whatever their project, then the short ones project by project:
// a worker process runs one file after another only while the next file is of its project (files
// share a process per worker, `isolate: false`), and a new process costs its start and imports.
// How long a file takes: vitest's own timing of the last run when it has one, else the hints below
// (a fresh clone has no timings).
import { relative } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Seconds of wall time on the project's 2-core machine (2026-12-02, a full run at 3 workers), for
 * the files that take longest; every other file counts as short. Only the order matters.
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

/** Files expected to take at least this long start first, whatever their project. */
const LONG_MS = 10_000;

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
    const projects = this.ctx.projects.map((project) => project.name);
    const longestFirst = (a: TestSpecification, b: TestSpecification): number =>
      expectedMs(b) - expectedMs(a) || size(b) - size(a);
    const long = files.filter((spec) => expectedMs(spec) >= LONG_MS).sort(longestFirst);
    const short = files
      .filter((spec) => expectedMs(spec) < LONG_MS)
      .sort(
        (a, b) => projects.indexOf(a.project.name) - projects.indexOf(b.project.name) || longestFirst(a, b),
      );
    return [...long, ...short];
  }
}
