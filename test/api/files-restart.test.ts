// Files and seeded generators survive a restart of the whole stack (a new executor: no warm
// worker can hold them), with the same data folder.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startLocalStack } from "../../functions/src/local/stack.js";
import { call, Episode } from "../helpers/api.js";

describe("files across a restart", () => {
  it("a file written and one uploaded are there after the stack restarts; seeded draws continue", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "coding-env-files-"));
    const draw = "import random\nrandom.random()";
    try {
      const first = await startLocalStack({ port: 0, dataDir });
      const ep = await Episode.reset(first.baseUrl, { policy: "full", seed: 21 });
      let expectedDraw: string;
      try {
        await ep.run("open('kept.txt', 'w').write('written before the restart')");
        expect(
          (await call(first.baseUrl, "PUT", `/episodes/${ep.id}/files/up.txt`, { content: "up" })).status,
        ).toBe(200);
        await ep.run(draw);
        // A twin with the same seed and the same draws, without a restart between them.
        const twin = await Episode.reset(first.baseUrl, { policy: "full", seed: 21 });
        await twin.run(draw);
        expectedDraw = (await twin.run(draw)).observation.stdout;
      } finally {
        await first.stop();
      }
      const second = await startLocalStack({ port: 0, dataDir });
      try {
        const out = await call<{ observation: { stdout: string } }>(second.baseUrl, "POST", "/step", {
          action: { code: "[open('kept.txt').read(), open('up.txt').read()]" },
          episode_id: ep.id,
        });
        expect(out.body.observation.stdout).toBe('["written before the restart", "up"]');
        const drawn = await call<{ observation: { stdout: string } }>(second.baseUrl, "POST", "/step", {
          action: { code: draw },
          episode_id: ep.id,
        });
        // The generator's state came back from the snapshot: the draw continues the sequence.
        expect(drawn.body.observation.stdout).toBe(expectedDraw);
        const list = await call(second.baseUrl, "GET", `/episodes/${ep.id}/files`);
        expect(list.body).toEqual({
          episode_id: ep.id,
          files: [
            { path: "kept.txt", size: 26 },
            { path: "up.txt", size: 2 },
          ],
        });
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
