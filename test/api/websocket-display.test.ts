// Rich outputs over OpenEnv's WebSocket (/ws, a real local connection): a step's `display` bundles
// come at the top level of the observation message's data, exactly as POST /step returns them,
// with OpenEnv's observation fields unchanged; the reply is a StepResponse as /openapi.json
// documents it (the same zod schema validates it).
import { afterEach, describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { StepResponseSchema } from "../../functions/src/http/schemas.js";
import { call, Episode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");
const wsUrl = `${baseUrl.replace(/^http/, "ws")}/ws`;

interface Message {
  type: string;
  data: Record<string, unknown>;
}

const open: WebSocket[] = [];
afterEach(() => {
  for (const ws of open.splice(0)) ws.close();
});

/** A connection that sends one message at a time and returns its reply. */
async function connect(): Promise<(msg: unknown) => Promise<Message>> {
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((res, rej) => {
    ws.once("open", () => res());
    ws.once("error", rej);
  });
  open.push(ws);
  return (msg) =>
    new Promise<Message>((res) => {
      ws.once("message", (data) => res(JSON.parse(String(data)) as Message));
      ws.send(JSON.stringify(msg));
    });
}

const HTML_CELL = [
  "class Card:",
  "    def _repr_html_(self):",
  "        return '<b>card</b>'",
  "    def __repr__(self):",
  "        return 'Card()'",
  "display(Card())",
].join("\n");

describe("display over /ws", () => {
  it("an object with _repr_html_: the bundle at the top level of the step's data, as HTTP returns it", async () => {
    // Prepare: one episode over /ws, one over HTTP, same code
    const send = await connect();
    expect((await send({ type: "reset", data: { policy: "full" } })).type).toBe("observation");
    const http = await Episode.reset(baseUrl, { policy: "full" });
    // Act
    const reply = await send({ type: "step", data: { code: HTML_CELL } });
    const overHttp = await http.run(HTML_CELL);
    // Assess: OpenEnv's fields unchanged, display next to them, as on HTTP
    expect(reply.type).toBe("observation");
    expect(Object.keys(reply.data.observation as object).sort()).toEqual(["exit_code", "stderr", "stdout"]);
    expect(reply.data.observation).toEqual({ stdout: "", stderr: "", exit_code: 0 });
    expect(reply.data.display).toEqual([
      { data: { "text/html": "<b>card</b>", "text/plain": "Card()" }, metadata: {} },
    ]);
    expect(reply.data.display).toEqual(overHttp.display);
    expect(StepResponseSchema.parse(reply.data)).toEqual(reply.data);
    // A step that displays nothing has no display member, as on HTTP.
    const plain = await send({ type: "step", data: { code: "1 + 1" } });
    expect(plain.data).not.toHaveProperty("display");
    // The history of the /ws episode keeps the bundle too.
    const history = await call<{ steps: Array<{ display?: unknown }> }>(
      baseUrl,
      "GET",
      `/episodes/${String(reply.data.episode_id)}/history`,
    );
    expect(history.body.steps[0]?.display).toEqual(reply.data.display);
  });

  it("a matplotlib figure without plt.show() arrives as a PNG bundle", async (ctx) => {
    const send = await connect();
    await send({ type: "reset", data: { policy: "full" } });
    const probe = await send({
      type: "step",
      data: { code: "import importlib.util\nimportlib.util.find_spec('matplotlib') is not None" },
    });
    if ((probe.data.observation as { stdout: string }).stdout !== "true") {
      ctx.skip("matplotlib is not installed (apt-get install python3-matplotlib)");
    }
    const reply = await send({
      type: "step",
      data: { code: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])", timeout_s: 60 },
    });
    const display = reply.data.display as Array<{ data: Record<string, string> }>;
    expect(display).toHaveLength(1);
    const png = Buffer.from(display[0]?.data["image/png"] ?? "", "base64");
    expect(png.subarray(0, 4)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    expect(StepResponseSchema.safeParse(reply.data).success).toBe(true);
  });
});
