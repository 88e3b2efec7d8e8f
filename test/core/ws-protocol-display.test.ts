// The WebSocket protocol (ws/protocol.ts) answers a step with the same body as POST /step, `display`
// at the top level; for a transport with a message limit (AWS: API Gateway's 128 KB) it leaves out
// the display bundles that do not fit, whole and in order, with a note, so the step's reply still
// arrives. The executor is scripted here (the real one over a real /ws: test/api/websocket-display).
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import { EpisodeService } from "../../functions/src/core/episodes.js";
import { StepResponseSchema } from "../../functions/src/http/schemas.js";
import { toWireJson } from "../../functions/src/http/wire-json.js";
import { handleWsMessage, type WsContext, type WsSessionState } from "../../functions/src/ws/protocol.js";
import { FakeEpisodeRepository } from "./fake-episode-repository.js";
import { ScriptedExecutor } from "./scripted-executor.js";

const WS_LIMIT = 128 * 1024;

function session(maxReplyBytes?: number): { ctx: WsContext; executor: ScriptedExecutor } {
  const executor = new ScriptedExecutor();
  const service = new EpisodeService({
    repository: new FakeEpisodeRepository(),
    executor,
    config: defaultConfig,
    logError: () => {},
  });
  let state: WsSessionState = { episodeId: null };
  const ctx: WsContext = {
    service,
    tenantId: "tenant-a",
    session: {
      load: async () => state,
      save: async (next) => {
        state = next;
      },
    },
    ...(maxReplyBytes !== undefined ? { maxReplyBytes } : {}),
  };
  return { ctx, executor };
}

/** A PNG-sized bundle: `chars` characters of base64-like data. */
function figure(i: number, chars: number) {
  return { data: { "image/png": String(i).repeat(chars), "text/plain": `<Figure ${i}>` }, metadata: {} };
}

const step = (code: string) => JSON.stringify({ type: "step", data: { code } });

describe("/ws step replies carry display as HTTP does", () => {
  it("the bundles at the top level of the observation's data; the observation keeps OpenEnv's fields", async () => {
    const { ctx, executor } = session();
    const bundles = [figure(1, 10), { data: { "text/html": "<table></table>" }, metadata: {} }];
    executor.answer = () => ({ display: bundles });
    const reply = (await handleWsMessage(step("plot()"), ctx)) as {
      type: string;
      data: Record<string, unknown>;
    };
    expect(reply.type).toBe("observation");
    expect(reply.data.display).toEqual(bundles);
    expect(Object.keys(reply.data.observation as object).sort()).toEqual(["exit_code", "stderr", "stdout"]);
    expect(StepResponseSchema.parse(reply.data)).toEqual(reply.data);
    executor.answer = undefined;
    const plain = (await handleWsMessage(step("1"), ctx)) as { data: Record<string, unknown> };
    expect(plain.data).not.toHaveProperty("display");
  });

  it("under a message limit, the bundles that fit (whole, in order) and a note on the rest", async () => {
    // Prepare: five 40 KB figures, more than one 128 KB message holds
    const { ctx, executor } = session(WS_LIMIT);
    const bundles = [1, 2, 3, 4, 5].map((i) => figure(i, 40 * 1024));
    executor.answer = () => ({ display: bundles });
    // Act
    const reply = (await handleWsMessage(step("plots()"), ctx)) as {
      data: { display: Array<{ data: Record<string, string>; metadata: Record<string, unknown> }> };
    };
    // Assess
    expect(Buffer.byteLength(toWireJson(reply), "utf8")).toBeLessThanOrEqual(WS_LIMIT);
    const { display } = reply.data;
    expect(display.slice(0, -1)).toEqual(bundles.slice(0, 3));
    expect(display.at(-1)).toMatchObject({
      data: { "text/plain": expect.stringContaining("2 display output(s)") },
      metadata: { dropped: 2 },
    });
    expect(StepResponseSchema.safeParse(reply.data).success).toBe(true);
    // Without a limit (the local /ws) nothing is left out.
    const local = session();
    local.executor.answer = () => ({ display: bundles });
    const whole = (await handleWsMessage(step("plots()"), local.ctx)) as { data: { display: unknown[] } };
    expect(whole.data.display).toEqual(bundles);
  });
});
