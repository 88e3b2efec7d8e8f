// A 100 MiB numpy array survives a restart of the whole stack (a new executor: no warm worker, no
// cached copy) through the local S3 under the data folder: the state object is read back by the
// new executor from a pre-signed GET URL. The API's /state reports nothing of it but the step count.
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startLocalStack } from "../../functions/src/local/stack.js";
import { call, Episode } from "../helpers/api.js";

/** Sizes of the objects the local S3 keeps under `dir` (s3rver's files end in `._S3rver_object`). */
function objectSizes(dir: string): number[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith("._S3rver_object"))
    .map((entry) => statSync(join(entry.parentPath, entry.name)).size);
}

describe("large state across a restart", () => {
  it("a 100 MiB numpy array is there after the stack restarts (read back from the local S3)", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "coding-env-large-"));
    const n = (100 * 1024 * 1024) / 8;
    const make =
      "import numpy as np\n" +
      `big = np.random.default_rng(5).integers(0, 2**62, ${n}, dtype=np.int64)\n` +
      "check = int(big[::4096].sum() % 1000003)\nprint(big.nbytes)";
    try {
      const first = await startLocalStack({ port: 0, dataDir });
      let ep: Episode;
      try {
        ep = await Episode.reset(first.baseUrl, { policy: "full", step_timeout_s: 120 });
        const made = await ep.run(make);
        expect(made.observation).toEqual({ stdout: `${8 * n}\n`, stderr: "", exit_code: 0 });
      } finally {
        await first.stop();
      }
      // The state is one object of about 100 MiB under the data folder.
      const sizes = objectSizes(join(dataDir, "s3"));
      expect(sizes.filter((size) => size > 100 * 1024 * 1024)).toHaveLength(1);

      const second = await startLocalStack({ port: 0, dataDir });
      try {
        const out = await call<{ observation: { stdout: string; exit_code: number } }>(
          second.baseUrl,
          "POST",
          "/step",
          {
            action: { code: "print(big.nbytes, int(big[::4096].sum() % 1000003) == check, big.dtype)" },
            episode_id: ep.id,
          },
        );
        expect(out.body.observation).toMatchObject({ stdout: `${8 * n} True int64\n`, exit_code: 0 });
        const state = await call<{ step_count: number }>(second.baseUrl, "GET", `/state?episode_id=${ep.id}`);
        expect(state.body.step_count).toBe(2);
        // Delete: its objects go from the local S3 too.
        expect((await call(second.baseUrl, "DELETE", `/episodes/${ep.id}`)).status).toBeLessThan(300);
        expect(objectSizes(join(dataDir, "s3"))).toEqual([]);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
