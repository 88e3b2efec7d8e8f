// A restart of the whole stack with the same data folder (a new executor: no warm worker, no cached
// copy can hold anything): episodes, the files they wrote and were uploaded, seeded generators and a
// 100 MiB numpy state (an object in the local S3 under the data folder, read back by the new
// executor from a pre-signed GET URL) are all there afterwards. One restart serves every case:
// each stack start costs a Python executor and a DynamoDB.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { call, Episode } from "../helpers/api.js";

/** Sizes of the objects the local S3 keeps under `dir` (s3rver's files end in `._S3rver_object`). */
function objectSizes(dir: string): number[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith("._S3rver_object"))
    .map((entry) => statSync(join(entry.parentPath, entry.name)).size);
}

/** The local executor servers that are this process's direct children (their workers come and go). */
/** This process's executor children, by pid (an earlier file in this worker may have left one exiting). */
function executorServers(): Set<string> {
  const pids = new Set<string>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) !== process.pid) continue;
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes("coding_env_runtime")) pids.add(name);
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Executor children that were not there `before`, once none is left or after `ms`. */
async function newExecutorServers(before: Set<string>, ms = 10_000): Promise<string[]> {
  const started = Date.now();
  for (;;) {
    const added = [...executorServers()].filter((pid) => !before.has(pid));
    if (added.length === 0 || Date.now() - started > ms) return added;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const draw = "import random\nrandom.random()";
const n = (100 * 1024 * 1024) / 8;

describe("a restart of the whole stack on the same data folder", () => {
  let dataDir: string;
  let first: LocalStack | undefined;
  let second: LocalStack | undefined;
  /** What the first stack made, checked on the second. */
  const made = {
    kept: undefined as Episode | undefined,
    files: undefined as Episode | undefined,
    expectedDraw: "",
    large: undefined as Episode | undefined,
  };
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "coding-env-restart-"));
    first = await startLocalStack({ port: 0, dataDir });
  });
  afterAll(async () => {
    await first?.stop();
    await second?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("refuses a data folder another stack is using, clearly, and leaves nothing running", async () => {
    const stack = first as LocalStack;
    const before = executorServers();
    // Act
    const other = startLocalStack({ port: 0, dataDir });
    // Assess
    await expect(other).rejects.toThrow(/another coding-env/);
    expect(await newExecutorServers(before)).toEqual([]);
    expect((await call(stack.baseUrl, "GET", "/health")).status).toBe(200);
  });

  it("before the restart: an episode, one with files and seeded draws, one with a 100 MiB numpy array", async () => {
    const stack = first as LocalStack;
    made.kept = await Episode.reset(stack.baseUrl);
    await made.kept.run("kept = [1, 2, 3]");

    made.files = await Episode.reset(stack.baseUrl, { policy: "full", seed: 21 });
    await made.files.run("open('kept.txt', 'w').write('written before the restart')");
    expect(
      (await call(stack.baseUrl, "PUT", `/episodes/${made.files.id}/files/up.txt`, { content: "up" })).status,
    ).toBe(200);
    await made.files.run(draw);
    // A twin with the same seed and the same draws, without a restart between them.
    const twin = await Episode.reset(stack.baseUrl, { policy: "full", seed: 21 });
    await twin.run(draw);
    made.expectedDraw = (await twin.run(draw)).observation.stdout;

    made.large = await Episode.reset(stack.baseUrl, { policy: "full", step_timeout_s: 120 });
    const big = await made.large.run(
      "import numpy as np\n" +
        `big = np.random.default_rng(5).integers(0, 2**62, ${n}, dtype=np.int64)\n` +
        "check = int(big[::4096].sum() % 1000003)\nprint(big.nbytes)",
    );
    expect(big.observation).toEqual({ stdout: `${8 * n}\n`, stderr: "", exit_code: 0 });
    await stack.stop();
    first = undefined;
    // The large state is one object of about 100 MiB under the data folder.
    expect(objectSizes(join(dataDir, "s3")).filter((size) => size > 100 * 1024 * 1024)).toHaveLength(1);
    second = await startLocalStack({ port: 0, dataDir });
  }, 180_000);

  it("keeps episodes in the data folder", async () => {
    const stack = second as LocalStack;
    const out = await call(stack.baseUrl, "POST", "/step", {
      action: { code: "sum(kept)" },
      episode_id: made.kept?.id,
    });
    expect(out.status).toBe(200);
    expect((out.body as { observation: { stdout: string } }).observation.stdout).toBe("6");
  });

  it("a file written and one uploaded are there; seeded draws continue", async () => {
    const stack = second as LocalStack;
    const id = made.files?.id as string;
    const out = await call<{ observation: { stdout: string } }>(stack.baseUrl, "POST", "/step", {
      action: { code: "[open('kept.txt').read(), open('up.txt').read()]" },
      episode_id: id,
    });
    expect(out.body.observation.stdout).toBe('["written before the restart", "up"]');
    const drawn = await call<{ observation: { stdout: string } }>(stack.baseUrl, "POST", "/step", {
      action: { code: draw },
      episode_id: id,
    });
    // The generator's state came back from the snapshot: the draw continues the sequence.
    expect(drawn.body.observation.stdout).toBe(made.expectedDraw);
    const list = await call(stack.baseUrl, "GET", `/episodes/${id}/files`);
    expect(list.body).toEqual({
      episode_id: id,
      files: [
        { path: "kept.txt", size: 26 },
        { path: "up.txt", size: 2 },
      ],
    });
  });

  it("a 100 MiB numpy array is read back from the local S3; deleting the episode removes its objects", async () => {
    const stack = second as LocalStack;
    const id = made.large?.id as string;
    const out = await call<{ observation: { stdout: string; exit_code: number } }>(
      stack.baseUrl,
      "POST",
      "/step",
      {
        action: { code: "print(big.nbytes, int(big[::4096].sum() % 1000003) == check, big.dtype)" },
        episode_id: id,
      },
    );
    expect(out.body.observation).toMatchObject({ stdout: `${8 * n} True int64\n`, exit_code: 0 });
    // The API's /state reports nothing of it but the step count.
    const state = await call<{ step_count: number }>(stack.baseUrl, "GET", `/state?episode_id=${id}`);
    expect(state.body.step_count).toBe(2);
    // Delete: its objects go from the local S3 too (the other episodes' states are small: none there).
    expect((await call(stack.baseUrl, "DELETE", `/episodes/${id}`)).status).toBeLessThan(300);
    expect(objectSizes(join(dataDir, "s3"))).toEqual([]);
  }, 120_000);
});
