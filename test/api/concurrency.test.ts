// Many episodes at once, concurrent steps on one episode (409 or serialized, never a lost
// update), and request_id idempotency.
import { describe, expect, inject, it } from "vitest";
import { call, Episode, errorCode, type StepBody } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

describe("concurrency", () => {
  it("runs 24 episodes in parallel, each keeping its own state", async () => {
    const episodes = await Promise.all(Array.from({ length: 24 }, () => Episode.reset(baseUrl)));
    await Promise.all(episodes.map((ep, i) => ep.run(`mine = ${i}`)));
    await Promise.all(episodes.map((ep) => ep.run("mine = mine * 10")));
    const outs = await Promise.all(episodes.map((ep) => ep.run("mine")));
    expect(outs.map((o) => o.observation.stdout)).toEqual(episodes.map((_, i) => String(i * 10)));
    expect(outs.every((o) => o.step_count === 3)).toBe(true);
  });

  it("parallel steps on one episode: each is committed or answered 409 with Retry-After; none is lost", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl);
    await ep.run("hits = []");
    // Act
    const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => ep.step(`hits.append(${i})`)));
    // Assess
    const ok = replies.filter((r) => r.status === 200);
    const conflicts = replies.filter((r) => r.status === 409);
    expect(ok.length + conflicts.length).toBe(6);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const c of conflicts) {
      // In-process or in the executor: `step_in_progress` (it did not run); across API
      // instances a lost commit race: `conflict`.
      expect(["step_in_progress", "conflict"]).toContain(errorCode(c));
      expect(c.headers.get("retry-after")).toBe("1");
    }
    const committed = ok.map((r) => r.body.step_count).sort();
    expect(new Set(committed).size).toBe(ok.length);
    const hits = await ep.run("sorted(hits)");
    expect(JSON.parse(hits.observation.stdout)).toHaveLength(ok.length);
    expect(hits.step_count).toBe(2 + ok.length);
    const h = await call<{ steps: unknown[] }>(baseUrl, "GET", `/episodes/${ep.id}/history`);
    expect(h.body.steps).toHaveLength(2 + ok.length);
  });
});

describe("idempotency (request_id)", () => {
  it("a retry returns the stored response, with Idempotent-Replayed, and the code runs once", async () => {
    // Prepare
    const ep = await Episode.reset(baseUrl);
    await ep.run("n = 0");
    // Act
    const first = await ep.step("n += 1\nn", { request_id: "req-abc" });
    const retry = await ep.step("n += 1\nn", { request_id: "req-abc" });
    // Assess
    expect(first.status).toBe(200);
    expect(first.headers.get("idempotent-replayed")).toBeNull();
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body).toEqual(first.body);
    const after = await ep.run("n");
    expect(after.observation.stdout).toBe("1");
    expect(after.step_count).toBe(3);
  });

  it("concurrent duplicates of one request_id commit once and both get that response", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("n = 0");
    // On two API instances the twin is told the first attempt runs and sends it again, as the SDKs do.
    const [a, b] = await Promise.all([
      ep.stepAwaitingFirstAttempt("n += 1\nn", { request_id: "dup" }),
      ep.stepAwaitingFirstAttempt("n += 1\nn", { request_id: "dup" }),
    ]);
    expect([a?.status, b?.status]).toEqual([200, 200]);
    expect(a?.body).toEqual(b?.body);
    expect((await ep.run("n")).observation.stdout).toBe("1");
  });

  it("the same request_id on another episode is a different request", async () => {
    const a = await Episode.reset(baseUrl);
    const b = await Episode.reset(baseUrl);
    const ra = await call<StepBody>(baseUrl, "POST", "/step", {
      action: { code: "'a'" },
      episode_id: a.id,
      request_id: "same",
    });
    const rb = await call<StepBody>(baseUrl, "POST", "/step", {
      action: { code: "'b'" },
      episode_id: b.id,
      request_id: "same",
    });
    expect(ra.body.observation.stdout).toBe('"a"');
    expect(rb.body.observation.stdout).toBe('"b"');
    expect(rb.headers.get("idempotent-replayed")).toBeNull();
  });

  it("a reset with the same id forgets the old incarnation's request ids", async () => {
    const ep = await Episode.reset(baseUrl, { episode_id: "idem-reset" });
    await ep.run("1", { request_id: "once" });
    await Episode.reset(baseUrl, { episode_id: "idem-reset" });
    const again = await ep.step("2", { request_id: "once" });
    expect(again.headers.get("idempotent-replayed")).toBeNull();
    expect(again.body.observation.stdout).toBe("2");
    expect(again.body.step_count).toBe(1);
  });
});
