// A step whose answer is lost on the way back (connection cut mid-body): the page retries once with
// the same request_id and the API replays the stored result, so the code runs once. Real parts: the
// local stack, real Chromium, and a real HTTP proxy in between that cuts the first /step answer.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CONTEXT_OPTIONS, launchChromium, openPage, reset, step, text } from "./page-driver.js";

const baseUrl = inject("baseUrl");
let browser: Browser;
let proxy: Server;
let proxyUrl: string;
/** What the proxy saw of each POST /step: the request_id sent and whether the API replayed it. */
const stepCalls: { requestId: string; replayed: boolean; cut: boolean }[] = [];
let cutNextStep = false;

function forwardHeaders(headers: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [name, value] of Object.entries(headers)) {
    // The page's Origin is the proxy's; a same-host reverse proxy presents the API's own origin
    // (the API refuses other origins).
    if (name === "origin") {
      out.set(name, new URL(baseUrl).origin);
      continue;
    }
    if (value === undefined || name === "host" || name === "connection" || name === "content-length")
      continue;
    out.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return out;
}

beforeAll(async () => {
  proxy = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const upstream = await fetch(`${baseUrl}${req.url ?? "/"}`, {
      method: req.method,
      headers: forwardHeaders(req.headers),
      body: body.length > 0 ? body : undefined,
    });
    const payload = Buffer.from(await upstream.arrayBuffer());
    const headers: Record<string, string | string[]> = {};
    upstream.headers.forEach((value, name) => {
      if (name !== "content-encoding" && name !== "transfer-encoding" && name !== "connection")
        headers[name] = value;
    });
    const cookies = upstream.headers.getSetCookie();
    if (cookies.length > 0) headers["set-cookie"] = cookies;
    if (req.method === "POST" && req.url === "/step") {
      const cut = cutNextStep;
      cutNextStep = false;
      stepCalls.push({
        requestId: (JSON.parse(body.toString("utf8")) as { request_id?: string }).request_id ?? "",
        replayed: upstream.headers.get("idempotent-replayed") === "true",
        cut,
      });
      if (cut) {
        // Headers and half the body, then the connection dies: the step ran, the answer is lost.
        res.writeHead(upstream.status, { ...headers, "content-length": String(payload.length) });
        res.write(payload.subarray(0, Math.floor(payload.length / 2)));
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
    }
    res.writeHead(upstream.status, headers);
    res.end(payload);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  proxy?.closeAllConnections();
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
});

describe("HumanAgent page when a step's answer is lost", () => {
  it("retries once with the same request_id; the code runs once and the result is shown", async () => {
    // Prepare
    const context = await browser.newContext(CONTEXT_OPTIONS);
    const page = await context.newPage();
    try {
      await openPage(page, proxyUrl);
      const episodeId = await reset(page);
      cutNextStep = true;

      // Act
      await step(page, "print('ran once')");

      // Assess: two requests with one request_id, the second answered from the idempotency record.
      expect(stepCalls).toHaveLength(2);
      expect(stepCalls[0]?.cut).toBe(true);
      expect(stepCalls[1]?.requestId).toBe(stepCalls[0]?.requestId);
      expect(stepCalls[1]?.replayed).toBe(true);
      expect(await text(page, "#obs-stdout")).toBe("ran once");
      expect(await page.locator("#error").isHidden()).toBe(true);
      const state = (await (await fetch(`${baseUrl}/episodes/${encodeURIComponent(episodeId)}`)).json()) as {
        step_count: number;
      };
      expect(state.step_count).toBe(1);
      expect(await text(page, "#st-steps")).toBe("1");
    } finally {
      await context.close();
    }
  });
});
