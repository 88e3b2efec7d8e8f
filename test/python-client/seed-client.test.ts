// OpenEnv's seed-era Python client (requests.Session, no episode id) against the real stack.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, inject, it } from "vitest";

const here = dirname(fileURLToPath(import.meta.url));

it("the seed-era requests.Session client keeps its episode through the cookie", () => {
  // Act
  const run = spawnSync("/usr/bin/python3", [join(here, "seed_client.py"), inject("baseUrl")], {
    encoding: "utf8",
    timeout: 60_000,
  });
  // Assess
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const result = JSON.parse(run.stdout.trim()) as { ok: boolean; episode_id: string; step_count: number };
  expect(result.ok).toBe(true);
  expect(result.step_count).toBe(1);
  expect(result.episode_id).toMatch(/^ep_/);
});

it("OpenEnv's current WebSocket protocol works from Python (websockets)", () => {
  const run = spawnSync("/usr/bin/python3", [join(here, "ws_client.py"), inject("baseUrl")], {
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  const result = JSON.parse(run.stdout.trim()) as { ok: boolean; step_count: number };
  expect(result).toMatchObject({ ok: true, step_count: 2 });
});
