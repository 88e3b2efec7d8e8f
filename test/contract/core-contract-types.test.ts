// The core's response and record types are the wire schemas' own (z.output of http/schemas.ts), so
// the contract is written once; and the core stays free of Hono: nothing it imports, directly or
// through the schemas, is a Hono package (zod alone is fine).
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, expectTypeOf, it } from "vitest";
import type { z } from "zod";
import type { FileList, FileWritten } from "../../functions/src/core/files.js";
import type {
  HistoryPageBody,
  Observation,
  StepRecord,
  StepResponse,
} from "../../functions/src/core/step-result.js";
import type {
  CodeObservationSchema,
  FileListSchema,
  FileWrittenSchema,
  HistoryPageSchema,
  HistoryStepSchema,
  StepResponseSchema,
} from "../../functions/src/http/schemas.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Every module specifier a TypeScript file imports or re-exports (type-only ones included). */
function specifiers(file: string): string[] {
  const source = readFileSync(file, "utf8");
  return [...source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?from\s+"([^"]+)"|import\s+"([^"]+)"/g)].map(
    (m) => m[1] ?? m[2] ?? "",
  );
}

/** The packages `entry` reaches through relative imports, with the file that imports each. */
function packagesReached(entries: string[]): Map<string, string> {
  const seen = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [...entries];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const spec of specifiers(file)) {
      if (spec.startsWith(".")) queue.push(join(dirname(file), spec).replace(/\.js$/, ".ts"));
      else if (!packages.has(spec)) packages.set(spec, file.slice(ROOT.length + 1));
    }
  }
  return packages;
}

describe("the core's wire types", () => {
  it("are the schemas' types: observation, step response, history record and page, file bodies", () => {
    expectTypeOf<Observation>().toEqualTypeOf<z.output<typeof CodeObservationSchema>>();
    expectTypeOf<StepResponse>().toEqualTypeOf<z.output<typeof StepResponseSchema>>();
    expectTypeOf<StepRecord>().toExtend<z.output<typeof HistoryStepSchema>>();
    expectTypeOf<HistoryPageBody>().toExtend<z.output<typeof HistoryPageSchema>>();
    expectTypeOf<FileWritten>().toEqualTypeOf<z.output<typeof FileWrittenSchema>>();
    expectTypeOf<FileList>().toEqualTypeOf<z.output<typeof FileListSchema>>();
  });

  it("come without Hono: nothing the core reaches (the schemas included) imports a Hono package", () => {
    const core = join(ROOT, "functions", "src", "core");
    const entries = ["episodes.ts", "step-result.ts", "files.ts", "history.ts", "episode-repository.ts"].map(
      (f) => join(core, f),
    );
    const reached = packagesReached(entries);
    expect(reached.has("zod"), "the core's types come from the zod schemas").toBe(true);
    const hono = [...reached].filter(
      ([name]) => name === "hono" || name.startsWith("hono/") || name.startsWith("@hono/"),
    );
    expect(hono).toEqual([]);
  });
});
