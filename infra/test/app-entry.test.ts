import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

it("a bad -c coding-env:* value is one line naming the key, exit 1, no stack trace", async () => {
  const outDir = mkdtempSync(join(tmpdir(), "coding-env-cdk-"));
  // What `cdk synth -c coding-env:nag=maybe` hands the app (cdk.json's command).
  const failure = await run(process.execPath, ["--import", "tsx", "infra/bin/app.ts"], {
    cwd: repoRoot,
    env: {
      ...process.env,
      CDK_OUTDIR: outDir,
      CDK_CONTEXT_JSON: JSON.stringify({ "coding-env:nag": "maybe" }),
    },
  }).then(
    () => undefined,
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
  rmSync(outDir, { recursive: true, force: true });

  expect(failure?.code).toBe(1);
  expect(failure?.stderr).toBe('coding-env: context coding-env:nag: expected true or false, got "maybe"\n');
});
