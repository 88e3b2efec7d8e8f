// An episode's files (its working directory) are part of its state: kept across steps, in a fork
// (a cold restore: another episode id never meets the source's warm worker), listed, downloaded
// and uploaded through the API; traversal refused, sizes capped. Seeds make draws reproducible.
import { describe, expect, inject, it } from "vitest";
import { call, Episode, errorCode, type StepBody } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const FULL = { policy: "full" };

async function fork(ep: Episode): Promise<Episode> {
  const r = await call<StepBody>(baseUrl, "POST", `/episodes/${ep.id}/fork`);
  expect(r.status).toBe(201);
  return Object.assign(Object.create(Object.getPrototypeOf(ep)), ep, { id: r.body.episode_id }) as Episode;
}

describe("episode files", () => {
  it("a file written in one step is there in the next, in a fork (cold restore), and through the API", async () => {
    const ep = await Episode.reset(baseUrl, FULL);
    await ep.run("import os\nos.makedirs('out', exist_ok=True)\nopen('out/r.txt', 'w').write('result 42')");
    expect((await ep.run("open('out/r.txt').read()")).observation.stdout).toBe('"result 42"');

    const copy = await fork(ep);
    const cold = await copy.run("open('out/r.txt').read()");
    expect(cold.observation.stdout).toBe('"result 42"');

    const list = await call(baseUrl, "GET", `/episodes/${ep.id}/files`);
    expect(list.status).toBe(200);
    expect(list.body).toEqual({ episode_id: ep.id, files: [{ path: "out/r.txt", size: 9 }] });
    const file = await fetch(`${baseUrl}/episodes/${ep.id}/files/out/r.txt`);
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toBe("application/octet-stream");
    expect(await file.text()).toBe("result 42");
  });

  it("an upload is a new state version that the next step (and a fork) sees", async () => {
    const ep = await Episode.reset(baseUrl, FULL);
    const bytes = Buffer.from([0, 1, 2, 255]);
    const put = await call(baseUrl, "PUT", `/episodes/${ep.id}/files/in/data.bin`, {
      content: bytes.toString("base64"),
      encoding: "base64",
    });
    expect(put.status).toBe(200);
    expect(put.body).toEqual({ episode_id: ep.id, path: "in/data.bin", size: 4, step_count: 1 });
    await call(baseUrl, "PUT", `/episodes/${ep.id}/files/note.txt`, { content: "héllo" });
    const seen = await ep.run("list(open('in/data.bin', 'rb').read()), open('note.txt').read()");
    expect(seen.observation.stdout).toBe('[[0, 1, 2, 255], "h\\u00e9llo"]');
    expect(seen.step_count).toBe(3);
    const copy = await fork(ep);
    expect((await copy.run("open('note.txt', encoding='utf-8').read() == 'héllo'")).observation.stdout).toBe(
      "true",
    );
    const history = await call<{ steps: Array<{ info: Record<string, unknown> }> }>(
      baseUrl,
      "GET",
      `/episodes/${ep.id}/history`,
    );
    expect(history.body.steps[0]?.info.files_written).toEqual([{ path: "in/data.bin", size: 4 }]);
  });

  it("refuses traversal and other paths outside the directory (400)", async () => {
    const ep = await Episode.reset(baseUrl, FULL);
    for (const path of ["..%2Fetc%2Fpasswd", "a/..%2F..%2Fb", "%2Fetc%2Fpasswd", "a%5Cb", "a//b", ".%2Fa"]) {
      const put = await call(baseUrl, "PUT", `/episodes/${ep.id}/files/${path}`, { content: "x" });
      expect(put.status, path).toBe(400);
      expect(errorCode(put)).toBe("invalid_path");
      const get = await call(baseUrl, "GET", `/episodes/${ep.id}/files/${path}`);
      expect(get.status, path).toBe(400);
    }
    const missing = await call(baseUrl, "GET", `/episodes/${ep.id}/files/nope.txt`);
    expect(missing.status).toBe(404);
    expect(errorCode(missing)).toBe("file_not_found");
    const unknown = await call(baseUrl, "GET", "/episodes/ep_nope/files");
    expect(unknown.status).toBe(404);
  });

  it("caps sizes (413) and drops symlinks out of the state", async () => {
    const ep = await Episode.reset(baseUrl, FULL);
    const big = await call(baseUrl, "PUT", `/episodes/${ep.id}/files/big.txt`, {
      content: "x".repeat(1024 * 1024 + 1),
    });
    expect(big.status).toBe(413);
    const linked = await ep.run("import os\nos.symlink('/etc/passwd', 'p')\nopen('ok', 'w').write('1')");
    expect(linked.info?.dropped_variables).toEqual([{ name: "file:p", type: "symlink" }]);
    const list = await call<{ files: unknown[] }>(baseUrl, "GET", `/episodes/${ep.id}/files`);
    expect(list.body.files).toEqual([{ path: "ok", size: 1 }]);
  });
});

describe("seeded episodes", () => {
  const draw = "import random\n[random.random() for _ in range(3)]";
  async function draws(seed: number | undefined): Promise<string[]> {
    const ep = await Episode.reset(baseUrl, seed === undefined ? {} : { seed });
    return [(await ep.run(draw)).observation.stdout, (await ep.run(draw)).observation.stdout];
  }

  it("two resets with the same seed give the same numbers, warm and after a fork", async () => {
    const [a, b] = [await draws(1234), await draws(1234)];
    expect(a).toEqual(b);
    expect(a[0]).not.toEqual(a[1]);
    expect(await draws(99)).not.toEqual(a);
    const ep = await Episode.reset(baseUrl, { seed: 1234 });
    await ep.run(draw);
    const copy = await fork(ep);
    expect((await copy.run(draw)).observation.stdout).toBe(a[1]);
  });

  it("numpy's global generator too", async () => {
    const code = "import numpy as np\n[float(v) for v in np.random.rand(2)]";
    const runs: string[] = [];
    for (let i = 0; i < 2; i++) {
      const ep = await Episode.reset(baseUrl, { seed: 5, policy: "full" });
      runs.push((await ep.run(code)).observation.stdout);
    }
    expect(runs[0]).toEqual(runs[1]);
  });
});
