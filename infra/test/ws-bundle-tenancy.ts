// Tenancy over the AWS WebSocket path exactly as over HTTP: the WebSocket Lambda's bundle (as
// deployed) behind the API Gateway stand-in (ws-gateway.ts) and the local stack's HTTP API share one
// table, and each test crosses the two. API keys on $connect, re-checked per message; tenant
// isolation; the daily step and active-episode quotas; metering (GET /usage) of steps run over /ws.
// The tests run in ws-bundle.test.ts, on its stand-in and stack (one of each for both: each test
// here makes tenants of its own).
import { beforeAll, describe, expect, it } from "vitest";
import type { QuotaOverrides } from "../../functions/src/tenancy/quotas.js";
import { HandshakeRefused } from "../../test/api/websocket-scenario.js";
import type { WsBundleEnv } from "./ws-gateway.js";

interface UsageTotals {
  steps: number;
  executions: number;
  executor_ms: number;
  episodes_created: number;
}

/** The tenancy tests, on the running bundle `envOf()` gives (started by the caller's `beforeAll`). */
export function describeWsBundleTenancy(envOf: () => WsBundleEnv): void {
  describe("WebSocket Lambda bundle: keys, isolation, quotas and metering as over HTTP", () => {
    wsBundleTenancyTests(envOf);
  });
}

function wsBundleTenancyTests(envOf: () => WsBundleEnv): void {
  let env: WsBundleEnv;
  let tenants = 0;
  /** A key of a new tenant (with `quotas` overriding the deployment's). */
  const newKey = async (quotas?: QuotaOverrides) =>
    (
      await env.keys.create({
        tenantId: `ws-tenancy-${++tenants}`,
        name: "ws tenancy test",
        ...(quotas ? { quotas } : {}),
      })
    ).key;
  const refusal = async (opts: Parameters<WsBundleEnv["connect"]>[0]) => {
    const err = await env.connect(opts).then(
      () => new Error("the handshake was accepted"),
      (e: unknown) => e,
    );
    if (!(err instanceof HandshakeRefused)) throw err;
    return { status: err.status, body: JSON.parse(err.body) as unknown };
  };

  beforeAll(() => {
    env = envOf();
  });

  it("refuses the handshake without a key, or with an unknown one, with the HTTP status and the API's JSON error", async () => {
    for (const opts of [
      {},
      { query: "?api_key=ce_live_notakey" },
      { headers: { authorization: "Bearer nope" } },
      { headers: { authorization: `Basic ${Buffer.from("apikey:nope").toString("base64")}` } },
    ]) {
      expect(await refusal(opts)).toEqual({
        status: 401,
        body: { error: { code: "unauthorized", message: expect.any(String) } },
      });
    }
  });

  it("takes the key from Authorization: Bearer, X-API-Key, Basic (a URL's user information) or ?api_key=", async () => {
    const key = await newKey();
    const ways: { headers?: Record<string, string>; query?: string }[] = [
      { headers: { authorization: `Bearer ${key}` } },
      { headers: { "x-api-key": key } },
      { headers: { authorization: `Basic ${Buffer.from(`apikey:${key}`).toString("base64")}` } },
      { query: `?api_key=${key}` },
    ];
    for (const opts of ways) {
      const c = await env.connect(opts);
      c.send({ type: "step", data: { code: "6 * 7" } });
      expect((await c.next()).data.observation?.stdout, JSON.stringify(Object.keys(opts))).toBe("42");
    }
  }, 60_000);

  it("ends an open connection whose key is revoked: an error in OpenEnv's shape, then the close", async () => {
    const key = await newKey();
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "1" } });
    expect((await c.next()).type).toBe("observation");
    await env.keys.revoke(key);
    c.send({ type: "step", data: { code: "2" } });
    expect(await c.next()).toMatchObject({
      type: "error",
      data: { code: "SESSION_ERROR", error_code: "unauthorized" },
    });
    expect((await c.closed).code).toBe(1000);
  }, 60_000);

  it("isolates tenants as HTTP does: another tenant's episode cannot be resumed (404), and a reset with its id makes the caller's own", async () => {
    const a = await newKey();
    const b = await newKey();
    const ca = await env.connect({ headers: { "x-api-key": a } });
    ca.send({ type: "step", data: { code: "secret = 41" } });
    const { episode_id: id } = (await ca.next()).data;
    expect(await refusal({ headers: { "x-api-key": b }, query: `?episode_id=${id}` })).toMatchObject({
      status: 404,
      body: { error: { code: "episode_not_found" } },
    });
    // B's reset with A's id over /ws: B's own episode, which knows nothing of A's.
    const cb = await env.connect({ headers: { "x-api-key": b } });
    cb.send({ type: "reset", data: { episode_id: id } });
    expect(await cb.next()).toMatchObject({ type: "observation", data: { episode_id: id, step_count: 0 } });
    cb.send({ type: "step", data: { code: "secret" } });
    expect((await cb.next()).data.observation).toMatchObject({
      exit_code: 1,
      stderr: expect.stringMatching(/NameError/),
    });
    // A's episode is untouched, over /ws and over HTTP.
    ca.send({ type: "step", data: { code: "secret + 1" } });
    expect(await ca.next()).toMatchObject({ data: { step_count: 2, observation: { stdout: "42" } } });
    expect((await env.http(a, "GET", `/episodes/${id}`)).body).toMatchObject({ step_count: 2 });
    expect((await env.http(b, "GET", `/episodes/${id}`)).body).toMatchObject({ step_count: 1 });
  }, 60_000);

  it("meters a step over /ws like one over HTTP (GET /usage), and both count against one steps_per_day quota", async () => {
    const key = await newKey({ stepsPerDay: 2 });
    // One step over HTTP, rolled up.
    const { body: reset } = await env.http<{ episode_id: string }>(key, "POST", "/reset", {});
    expect(
      (await env.http(key, "POST", "/step", { episode_id: reset.episode_id, action: { code: "1" } })).status,
    ).toBe(200);
    await env.stack.flushStream();
    // The second over /ws: the HTTP step counts against it, so one more runs.
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "step", data: { code: "2" } });
    const answer = await c.next();
    expect(answer.type, JSON.stringify(answer)).toBe("observation");
    await env.stack.flushStream();
    const usage = await env.http<{ totals: UsageTotals }>(key, "GET", "/usage");
    expect(usage.body.totals).toMatchObject({ steps: 2, executions: 2, episodes_created: 2 });
    expect(usage.body.totals.executor_ms).toBeGreaterThan(0);
    // The third is refused, whichever handler instance serves it (each reads the same usage item),
    // with HTTP's 429 as OpenEnv's code and HTTP's details.
    c.send({ type: "step", data: { code: "3" } });
    expect(await c.next()).toEqual({
      type: "error",
      data: {
        code: "CAPACITY_REACHED",
        error_code: "quota_exceeded",
        message: expect.stringContaining("steps_per_day"),
        details: expect.objectContaining({ quota: "steps_per_day", limit: 2 }),
      },
    });
    // And a step over /ws counts against the quota over HTTP.
    const other = await newKey({ stepsPerDay: 1 });
    const d = await env.connect({ headers: { "x-api-key": other } });
    d.send({ type: "step", data: { code: "1" } });
    const { episode_id: episodeId } = (await d.next()).data;
    await env.stack.flushStream();
    const refused = await env.http<{ error: { code: string; details: { quota: string } } }>(
      other,
      "POST",
      "/step",
      { episode_id: episodeId, action: { code: "2" } },
    );
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: "quota_exceeded", details: { quota: "steps_per_day" } });
  }, 90_000);

  it("counts an episode made over /ws against the active_episodes quota, over HTTP and /ws alike", async () => {
    const key = await newKey({ activeEpisodes: 1 });
    const c = await env.connect({ headers: { "x-api-key": key } });
    c.send({ type: "reset", data: {} });
    expect((await c.next()).type).toBe("observation");
    const http = await env.http<{ error: { code: string; details: { quota: string } } }>(
      key,
      "POST",
      "/reset",
      {},
    );
    expect(http.status).toBe(429);
    expect(http.body.error).toMatchObject({ code: "quota_exceeded", details: { quota: "active_episodes" } });
    const d = await env.connect({ headers: { "x-api-key": key } });
    d.send({ type: "reset", data: {} });
    expect(await d.next()).toMatchObject({
      type: "error",
      data: { code: "CAPACITY_REACHED", error_code: "quota_exceeded", details: { quota: "active_episodes" } },
    });
  }, 60_000);
}
