// Episode resources and session resolution: body id, X-Episode-Id, cookie; history, fork, delete.
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { describe, expect, inject, it, vi } from "vitest";
import { CLAIM_SK, episodePk } from "../../functions/src/store/layout.js";
import { call, Episode, errorCode, type StepBody } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

/** The attempt holding (or last holding) the episode's step claim, read from the stack's DynamoDB. */
async function stepClaimAttempt(episodeId: string): Promise<string | undefined> {
  const { endpoint, tableName, credentials } = inject("dynamodb");
  const ddb = new DynamoDBClient({ endpoint, region: "local", credentials });
  try {
    const key = { pk: { S: episodePk("local", episodeId) }, sk: { S: CLAIM_SK } };
    const out = await ddb.send(new GetItemCommand({ TableName: tableName, Key: key, ConsistentRead: true }));
    return out.Item?.attempt_id?.S;
  } finally {
    ddb.destroy();
  }
}

describe("choosing the episode", () => {
  it("uses the cookie /reset sets when the body has no episode_id", async () => {
    // Prepare
    const reset = await call<StepBody>(baseUrl, "POST", "/reset", {});
    const cookie = (reset.headers.get("set-cookie") ?? "").split(";")[0] as string;
    // Act
    await call(baseUrl, "POST", "/step", { action: { code: "v = 7" } }, { cookie });
    const out = await call<StepBody>(baseUrl, "POST", "/step", { action: { code: "v * 6" } }, { cookie });
    const state = await call(baseUrl, "GET", "/state", undefined, { cookie });
    // Assess
    expect(out.body.observation.stdout).toBe("42");
    expect(out.body.episode_id).toBe(reset.body.episode_id);
    expect(state.body).toMatchObject({ episode_id: reset.body.episode_id, step_count: 2 });
  });

  it("prefers body episode_id over X-Episode-Id over the cookie", async () => {
    const a = await Episode.reset(baseUrl);
    const b = await Episode.reset(baseUrl);
    const c = await Episode.reset(baseUrl);
    const cookie = `coding_env_episode=${c.id}`;
    const viaBody = await call<StepBody>(
      baseUrl,
      "POST",
      "/step",
      { action: { code: "1" }, episode_id: a.id },
      { "x-episode-id": b.id, cookie },
    );
    expect(viaBody.body.episode_id).toBe(a.id);
    const viaHeader = await call<StepBody>(
      baseUrl,
      "POST",
      "/step",
      { action: { code: "1" } },
      { "x-episode-id": b.id, cookie },
    );
    expect(viaHeader.body.episode_id).toBe(b.id);
    const state = await call(baseUrl, "GET", "/state", undefined, { "x-episode-id": b.id, cookie });
    expect(state.body.episode_id).toBe(b.id);
  });

  it("answers 400 episode_required for /step without any episode (/state answers the empty state, as OpenEnv)", async () => {
    const step = await call(baseUrl, "POST", "/step", { action: { code: "1" } });
    expect(step.status).toBe(400);
    expect(errorCode(step)).toBe("episode_required");
    expect((step.body as { error: { message: string } }).error.message).toContain("/reset");
    const state = await call(baseUrl, "GET", "/state");
    expect(state.status).toBe(200);
    expect(state.body).toMatchObject({ episode_id: null, step_count: 0 });
  });

  it("answers 404 episode_not_found for unknown and malformed ids", async () => {
    for (const id of ["ep_doesnotexist", "x".repeat(300), "../../etc", "a b"]) {
      const r = await call(baseUrl, "POST", "/step", { action: { code: "1" } }, { "x-episode-id": id });
      expect(r.status, id).toBe(404);
      expect(errorCode(r)).toBe("episode_not_found");
    }
    const r = await call(baseUrl, "GET", "/episodes/ep_nope/history");
    expect(r.status).toBe(404);
  });

  it("reset accepts OpenEnv's seed and episode_id and our options, and /state reports them", async () => {
    const ep = await Episode.reset(baseUrl, {
      seed: 7,
      episode_id: "my-run.1:a",
      policy: "full",
      additional_imports: ["json"],
      step_timeout_s: 5,
      ttl_s: 600,
      extra_field_openenv_may_send: true,
    });
    expect(ep.id).toBe("my-run.1:a");
    const state = await ep.state();
    expect(state).toMatchObject({
      episode_id: "my-run.1:a",
      step_count: 0,
      seed: 7,
      policy: "full",
      additional_imports: ["json"],
      step_timeout_s: 5,
      ttl_s: 600,
    });
    const expiresInS = (Date.parse(String(state.expires_at)) - Date.now()) / 1000;
    expect(expiresInS).toBeGreaterThan(590);
    expect(expiresInS).toBeLessThanOrEqual(601);
    // policy "full" allows any import
    expect((await ep.run("import os\nos.getpid() > 0")).observation.stdout).toBe("true");
  });
});

describe("episode resources", () => {
  it("GET /episodes/{id} is the same object as /state", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("1");
    const a = await call(baseUrl, "GET", `/episodes/${ep.id}`);
    const b = await call(baseUrl, "GET", "/state", undefined, { "x-episode-id": ep.id });
    expect(a.body).toEqual(b.body);
  });

  it("history lists every step's code, observation, reward and timing; also as JSONL", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl);
    await ep.run("a = 1");
    await ep.run("print(a)", { request_id: "r-1" });
    await ep.run("import os");
    // Act
    const h = await call<{ episode_id: string; steps: Array<Record<string, unknown>> }>(
      baseUrl,
      "GET",
      `/episodes/${ep.id}/history`,
    );
    const jsonl = await fetch(`${baseUrl}/episodes/${ep.id}/history?format=jsonl`);
    const viaAccept = await fetch(`${baseUrl}/episodes/${ep.id}/history`, {
      headers: { accept: "application/x-ndjson" },
    });
    // Assess
    expect(h.body.episode_id).toBe(ep.id);
    expect(h.body.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(h.body.steps.map((s) => s.code)).toEqual(["a = 1", "print(a)", "import os"]);
    expect(h.body.steps[1]).toMatchObject({
      observation: { stdout: "1\n", stderr: "", exit_code: 0 },
      reward: 0.1,
      done: false,
      request_id: "r-1",
    });
    expect(h.body.steps[2]?.reward).toBeCloseTo(-0.9, 10);
    expect(h.body.steps[2]?.metadata).toMatchObject({ safety_violation: "import\\s+os" });
    for (const s of h.body.steps) {
      expect(typeof s.duration_ms).toBe("number");
      expect(Number.isNaN(Date.parse(String(s.started_at)))).toBe(false);
    }
    expect(jsonl.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await jsonl.text())
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.code)).toEqual(["a = 1", "print(a)", "import os"]);
    expect(lines[0]?.episode_id).toBe(ep.id);
    expect((await viaAccept.text()).trim().split("\n")).toHaveLength(3);
  });

  it("keeps a huge step's full output in the response and a cut copy, flagged, in the history", async () => {
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    // ~800 KB of hex: over one DynamoDB item even compressed
    const out = await ep.run("import os\nprint(os.urandom(400_000).hex())");
    expect(out.observation.stdout.trim()).toHaveLength(800_000);
    const h = await call<{ steps: Array<{ observation: { stdout: string }; history_truncated?: boolean }> }>(
      baseUrl,
      "GET",
      `/episodes/${ep.id}/history`,
    );
    expect(h.body.steps[0]?.history_truncated).toBe(true);
    expect(h.body.steps[0]?.observation.stdout).toBe(out.observation.stdout.slice(0, 64 * 1024));
    expect((await ep.run("1 + 1")).observation.stdout).toBe("2");
  });

  it("fork copies the Python state and history; the two episodes then diverge", async () => {
    // Prepare
    const src = await Episode.reset(baseUrl);
    await src.run("xs = [1, 2]");
    await src.run("def total():\n    return sum(xs)");
    // Act
    const forked = await call<StepBody>(baseUrl, "POST", `/episodes/${src.id}/fork`);
    // Assess
    expect(forked.status).toBe(201);
    expect(forked.headers.get("set-cookie")).toBeNull();
    expect(forked.body).toMatchObject({ step_count: 2, forked_from: src.id, done: false });
    const copyId = forked.body.episode_id;
    expect(copyId).not.toBe(src.id);
    const step = (id: string, code: string) =>
      call<StepBody>(baseUrl, "POST", "/step", { action: { code }, episode_id: id });
    expect((await step(copyId, "xs.append(10)\ntotal()")).body.observation.stdout).toBe("13");
    expect((await step(src.id, "total()")).body.observation.stdout).toBe("3");
    const h = await call<{ steps: Array<{ code: string }> }>(baseUrl, "GET", `/episodes/${copyId}/history`);
    expect(h.body.steps.map((s) => s.code)).toEqual([
      "xs = [1, 2]",
      "def total():\n    return sum(xs)",
      "xs.append(10)\ntotal()",
    ]);
    expect((await call(baseUrl, "GET", `/episodes/${copyId}`)).body).toMatchObject({
      forked_from: src.id,
      step_count: 3,
    });
  });

  it("DELETE removes the episode: 204, then 404 everywhere", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("x = 1");
    const del = await call(baseUrl, "DELETE", `/episodes/${ep.id}`);
    expect(del.status).toBe(204);
    expect(del.text).toBe("");
    expect((await ep.step("x")).status).toBe(404);
    expect((await call(baseUrl, "GET", `/episodes/${ep.id}`)).status).toBe(404);
    expect((await call(baseUrl, "DELETE", `/episodes/${ep.id}`)).status).toBe(404);
  });

  it("a timed-out step reports timed_out and leaves the Python state as it was", async () => {
    const ep = await Episode.reset(baseUrl, { step_timeout_s: 1 });
    await ep.run("counter = 1");
    const r = await ep.run("counter = 2\nwhile True:\n    pass", { timeout_s: 60 });
    expect(r.observation.exit_code).toBe(1);
    expect(r.info?.timed_out).toBe(true);
    expect((await ep.run("counter")).observation.stdout).toBe("1");
  });
});

describe("history pages", () => {
  it("pages with limit and cursor (next_cursor, null at the end); bad paging is a 422", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl);
    for (let i = 1; i <= 5; i++) await ep.run(`s = ${i}`);
    type Page = { episode_id: string; steps: Array<{ step: number }>; next_cursor: string | null };
    // Act
    const pages: Page[] = [];
    let query = "?limit=2";
    for (let i = 0; i < 5; i++) {
      const page = await call<Page>(baseUrl, "GET", `/episodes/${ep.id}/history${query}`);
      expect(page.status).toBe(200);
      pages.push(page.body);
      if (page.body.next_cursor === null) break;
      query = `?limit=2&cursor=${encodeURIComponent(page.body.next_cursor)}`;
    }
    // Assess
    expect(pages.map((p) => p.steps.map((s) => s.step))).toEqual([[1, 2], [3, 4], [5]]);
    expect(pages[2]?.next_cursor).toBeNull();
    const all = await call<Page>(baseUrl, "GET", `/episodes/${ep.id}/history`);
    expect(all.body.steps).toHaveLength(5);
    expect(all.body.next_cursor).toBeNull();
    for (const q of ["?limit=0", "?limit=100000", "?limit=x", "?cursor=bm90LWEtY3Vyc29y"]) {
      const bad = await call(baseUrl, "GET", `/episodes/${ep.id}/history${q}`);
      expect(bad.status, q).toBe(422);
      expect(errorCode(bad)).toBe("validation_error");
    }
  });

  it("a cursor from before a reset of the same id is refused, not read as the new episode's", async () => {
    const ep = await Episode.reset(baseUrl, { episode_id: `paged-${Date.now()}` });
    for (let i = 0; i < 3; i++) await ep.run("1");
    const first = await call<{ next_cursor: string }>(baseUrl, "GET", `/episodes/${ep.id}/history?limit=1`);
    await Episode.reset(baseUrl, { episode_id: ep.id });
    const stale = await call(
      baseUrl,
      "GET",
      `/episodes/${ep.id}/history?cursor=${encodeURIComponent(first.body.next_cursor)}`,
    );
    expect(stale.status).toBe(422);
  });

  it("streams the JSONL export of a long history in order", async () => {
    const ep = await Episode.reset(baseUrl);
    for (let i = 1; i <= 120; i++) await ep.run(`v = ${i}`);
    const res = await fetch(`${baseUrl}/episodes/${ep.id}/history?format=jsonl`);
    const lines = (await res.text()).trim().split("\n");
    expect(lines).toHaveLength(120);
    expect(lines.map((l) => (JSON.parse(l) as { step: number }).step)).toEqual(
      Array.from({ length: 120 }, (_, i) => i + 1),
    );
  });
});

describe("one step at a time, and nothing a cell does is a 500", () => {
  it("a second step while one runs on the episode: 409 step_in_progress; it did not run", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl);
    await ep.run("ran = []");
    // Act: a slow step, and while it runs another one
    const claimedBefore = await stepClaimAttempt(ep.id);
    const slow = ep.step("import time\ntime.sleep(2.0)\nran.append('slow')");
    // The slow step holds the episode once it has taken the step claim (before its code runs).
    await vi.waitFor(async () => expect(await stepClaimAttempt(ep.id)).not.toBe(claimedBefore), {
      timeout: 20_000,
      interval: 20,
    });
    const second = await ep.step("ran.append('second')");
    // Assess
    expect(second.status).toBe(409);
    expect(errorCode(second)).toBe("step_in_progress");
    expect(second.headers.get("retry-after")).toBe("1");
    expect((await slow).status).toBe(200);
    expect((await ep.run("ran")).observation.stdout).toBe('["slow"]');
  });

  it("a state over the store's limit: 413 state_too_large after the run is metered; the episode is unchanged", async () => {
    // Prepare
    const today = new Date().toISOString().slice(0, 10);
    type Totals = { steps: number; executions: number };
    const totals = async () =>
      (await call<{ totals: Totals }>(baseUrl, "GET", `/usage?from=${today}&to=${today}`)).body.totals;
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    await ep.run("small = 1");
    // Let the roll-up catch up with what ran so far (other files' steps only add to both counts).
    let before = await totals();
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 200));
      const now = await totals();
      if (now.executions === before.executions && now.steps === before.steps) break;
      before = now;
    }
    // Act: about 4 MiB of random state (over the 3 MiB the store keeps)
    const big = await ep.step("import os\nbig = os.urandom(4 * 1024 * 1024)");
    // Assess
    expect(big.status).toBe(413);
    expect(errorCode(big)).toBe("state_too_large");
    expect((await ep.run("print(small, 'big' in globals())")).observation.stdout).toBe("1 False\n");
    let after = await totals();
    for (let i = 0; i < 50 && after.executions - after.steps <= before.executions - before.steps; i++) {
      await new Promise((r) => setTimeout(r, 200));
      after = await totals();
    }
    expect(after.executions - after.steps).toBeGreaterThan(before.executions - before.steps);
  });

  it("clamps exit codes a cell reports to 0..255 (else 1), answered 200", async () => {
    const ep = await Episode.reset(baseUrl);
    const codes: number[] = [];
    for (const code of [
      "raise SystemExit(2**60)",
      "raise SystemExit(-1)",
      "raise SystemExit(3)",
      "raise SystemExit(True)",
    ]) {
      const r = await ep.step(code);
      expect(r.status, code).toBe(200);
      codes.push(r.body.observation.exit_code);
    }
    expect(codes[0]).toBe(1);
    expect(codes[1]).toBe(1);
    expect(codes[2]).toBe(3);
    expect(codes[3]).toBeGreaterThanOrEqual(0);
    expect(codes[3]).toBeLessThanOrEqual(255);
  });
});
