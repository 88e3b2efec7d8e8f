// The protocol floor of a step: the same hops `POST /step print(1)` makes, with no work behind
// them. What is left is what the real protocols cost (HTTP in and out, the AWS SDK v3 clients with
// the API's own configuration), so it says how much of the latency target is reachable at all
// while keeping them.
//
//   1. Capture: a real local stack (in this process) serves a reset and some `print(1)` steps
//      through an API built as the stack builds it, whose DynamoDB and Lambda endpoints are
//      recording proxies. The last step's HTTP request and answer, its Query, both PutItems and
//      its Invoke (bodies and headers, as sent and as answered) are kept.
//   2. Canned servers: a DynamoDB endpoint answering each call with the captured answer for its
//      operation (on the floor API's event loop, where the stack runs its DynamoDB front), and a
//      Lambda endpoint answering the captured payload (a process of its own, as the executor);
//      they check only each request's size (the floor must send what the real step sent).
//   3. The floor API (a process of its own): @hono/node-server with keep-alive serving one Hono
//      route, POST /step: it parses the body, sends the captured Query, claim PutItem, Invoke and
//      commit PutItem (the same inputs, the same clients: `buildDeps` of functions/src/deps.ts,
//      so every client setting and tuning of the API applies), parses the Invoke's payload and
//      answers the captured step body.
//   4. Sequential keep-alive steps from this process: p50/p99 and CPU per step of the floor API
//      process (comparable to the stack's API process) and of the canned Lambda, from /proc.
//
// Not in the floor: the work between the hops (validation, the store's codecs, the state's
// pre-signed URLs: the Invoke carries the captured ones, so its size is the real step's). As in the
// API, local calls carry the local stack's authorization (deps.ts: its key id, no SigV4 HMAC); in
// AWS each call also pays SigV4 signing.
//
// Run: npx tsx bench/api/floor.ts [--steps 3000] [--warmup 500]
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  PutItemCommand,
  type PutItemCommandInput,
  QueryCommand,
  type QueryCommandInput,
} from "@aws-sdk/client-dynamodb";
import { InvokeCommand } from "@aws-sdk/client-lambda";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { API_ENV, configFromEnv } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { startApiServer } from "../../functions/src/local/api-server.js";
import { startLocalStack } from "../../functions/src/local/stack.js";
import { agent, loadAverage, percentile, post, stopProcess } from "./client.js";
import { processCpuMs } from "./cpu-per-step.js";

/** One HTTP exchange as it went over the wire. */
interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly requestHeaders: IncomingHttpHeaders;
  readonly requestBody: string;
  readonly status: number;
  readonly responseHeaders: IncomingHttpHeaders;
  readonly responseBody: string;
}

/** A captured step: its HTTP request and answer, and its calls in the order made. */
interface CapturedStep {
  readonly stepRequestBody: string;
  readonly stepResponseBody: string;
  /** `DynamoDB_20120810.Query`, `...PutItem` (claim), `Invoke`, `...PutItem` (commit). */
  readonly calls: ReadonlyArray<{ readonly kind: string; readonly exchange: Exchange }>;
}

const readAll = (stream: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("end", () => res(Buffer.concat(chunks)));
    stream.on("error", rej);
  });

/** A proxy to `target` that keeps every exchange (bodies as text: both protocols are JSON). */
async function recordingProxy(target: string, log: Exchange[]): Promise<{ server: Server; url: string }> {
  const to = new URL(target);
  const server = createServer(async (req, res) => {
    const body = await readAll(req);
    const out = request(
      {
        host: to.hostname,
        port: to.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: to.host },
      },
      async (answer) => {
        const answerBody = await readAll(answer);
        log.push({
          method: req.method ?? "GET",
          path: req.url ?? "/",
          requestHeaders: req.headers,
          requestBody: body.toString("utf8"),
          status: answer.statusCode ?? 0,
          responseHeaders: answer.headers,
          responseBody: answerBody.toString("utf8"),
        });
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.end(answerBody);
      },
    );
    out.on("error", () => res.destroy());
    out.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const kindOf = (e: Exchange): string =>
  typeof e.requestHeaders["x-amz-target"] === "string" ? e.requestHeaders["x-amz-target"] : "Invoke";

/** Steps a real stack through recording proxies and returns its last `print(1)` step. */
export async function captureStep(): Promise<CapturedStep> {
  const stack = await startLocalStack({ port: 0, dataDir: null });
  const log: Exchange[] = [];
  const ddb = await recordingProxy(stack.dynamodbEndpoint, log);
  const lambda = await recordingProxy(stack.executorEndpoint, log);
  try {
    // An API instance as the stack builds one (with its state bucket: a step's Invoke carries the
    // state's pre-signed URLs), on the proxies.
    const env = {
      ...process.env,
      CODING_ENV_LOG_REQUESTS: "off",
      [API_ENV.auth]: "off",
      [API_ENV.stateBucket]: stack.stateBucket,
      [API_ENV.s3Endpoint]: stack.s3Endpoint,
    };
    const api = await startApiServer({
      config: configFromEnv(env),
      env,
      dynamodbEndpoint: ddb.url,
      executorEndpoint: lambda.url,
      credentials: stack.credentials,
      host: "127.0.0.1",
      port: 0,
      publicHost: "127.0.0.1",
    });
    try {
      const base = `http://127.0.0.1:${api.port}`;
      const reset = await post(base, "/reset", {});
      const id = (JSON.parse(reset.body) as { episode_id: string }).episode_id;
      // The benchmark's step body (bench/api/run.ts, cpu-per-step.ts).
      const body = { action: { code: "print(1)" }, episode_id: id };
      let last = reset;
      for (let i = 0; i < 30; i++) {
        log.length = 0;
        last = await post(base, "/step", body);
        if (last.status !== 200) throw new Error(`step failed: ${last.status} ${last.body}`);
      }
      const calls = log.map((exchange) => ({ kind: kindOf(exchange), exchange }));
      const kinds = calls.map((c) => c.kind.replace("DynamoDB_20120810.", "")).join(",");
      if (kinds !== "Query,PutItem,Invoke,PutItem")
        throw new Error(`a step made other calls than expected: ${kinds}`);
      return { stepRequestBody: JSON.stringify(body), stepResponseBody: last.body, calls };
    } finally {
      await api.close();
    }
  } finally {
    ddb.server.close();
    lambda.server.close();
    await stack.stop();
  }
}

/** Response headers replayed as captured, but those the server sets itself. */
function replayHeaders(h: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || ["connection", "keep-alive", "date", "transfer-encoding"].includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * A canned endpoint: each call answered as captured, nothing checked but its size. `kindFrom` names
 * a request's operation (DynamoDB's X-Amz-Target; every Lambda call is an Invoke). @returns its URL
 */
async function serveCanned(
  step: CapturedStep,
  kindFrom: (h: IncomingHttpHeaders) => string,
): Promise<string> {
  const answers = new Map<string, Exchange[]>();
  for (const { kind, exchange } of step.calls) answers.set(kind, [...(answers.get(kind) ?? []), exchange]);
  const server = createServer((req, res) => {
    // Read the request to its end (keep-alive), then answer.
    let bytes = 0;
    req.on("data", (c: Buffer) => {
      bytes += c.length;
    });
    req.on("end", () => {
      const kind = kindFrom(req.headers);
      // The one check: the floor sends what the real step sent (a call of its size), else the
      // step fails. It also tells a step's two PutItems (claim, commit) apart.
      const e = answers.get(kind)?.find((x) => Buffer.byteLength(x.requestBody) === bytes);
      if (!e) {
        res.writeHead(400, { "content-type": "text/plain" });
        res.end(`${kind} of ${bytes} bytes: no captured call of that size`);
        return;
      }
      res.writeHead(e.status, replayHeaders(e.responseHeaders));
      res.end(e.responseBody);
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
const dynamoDbKind = (h: IncomingHttpHeaders) => String(h["x-amz-target"]);
const lambdaKind = () => "Invoke";

/** The floor API: one route making the captured step's calls with the API's own clients. */
async function serveFloorApi(step: CapturedStep, executorEndpoint: string) {
  // The canned DynamoDB runs on this process's event loop, as the local stack's DynamoDB front
  // runs on the API's: a call to it wakes no other process (cheaper socket writes), and its
  // HTTP work is this process's CPU, as the front's is the stack's API process's.
  const dynamodbEndpoint = await serveCanned(step, dynamoDbKind);
  const env = { ...process.env };
  const deps = buildDeps({
    config: configFromEnv(env),
    dynamodbEndpoint,
    executorEndpoint,
    env,
    localCredentials: { accessKeyId: "floor", secretAccessKey: "floor" },
  });
  // A step's Query and PutItems go through the store's step client, the Invoke through the
  // executor's client (deps.ts).
  const dynamodb = deps.store.table.client;
  const lambda = deps.lambda;
  // The calls' inputs as the SDK takes them: the wire's base64 binaries as bytes again.
  const input = <T>(i: number): T =>
    JSON.parse(step.calls[i]?.exchange.requestBody ?? "{}", (k, v) =>
      k === "B" && typeof v === "string" ? Buffer.from(v, "base64") : v,
    ) as T;
  const queryIn = input<QueryCommandInput>(0);
  const claimIn = input<PutItemCommandInput>(1);
  const invokePayload = step.calls[2]?.exchange.requestBody ?? "";
  const commitIn = input<PutItemCommandInput>(3);
  const invokePath = step.calls[2]?.exchange.path ?? "";
  const functionName = decodeURIComponent(/\/functions\/([^/]+)\/invocations/.exec(invokePath)?.[1] ?? "");
  const tenantId = step.calls[2]?.exchange.requestHeaders["x-amz-tenant-id"];
  const answer = JSON.parse(step.stepResponseBody) as unknown;
  const app = new Hono();
  app.onError((err, c) => c.text(`${err.name}: ${err.message}`, 500));
  app.post("/step", async (c) => {
    // Only the wire formats' own work: parse the request, send the four calls (the SDK serializes
    // their inputs and parses their answers), parse the Invoke's payload, write the answer.
    const request = (await c.req.json()) as { action?: { code?: string } };
    if (typeof request.action?.code !== "string") return c.json({ error: "bad request" }, 422);
    await dynamodb.send(new QueryCommand(queryIn));
    await dynamodb.send(new PutItemCommand(claimIn));
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: "RequestResponse",
        ...(typeof tenantId === "string" ? { TenantId: tenantId } : {}),
        Payload: Buffer.from(invokePayload),
      }),
    );
    JSON.parse(Buffer.from(out.Payload ?? new Uint8Array()).toString("utf8"));
    await dynamodb.send(new PutItemCommand(commitIn));
    return c.body(JSON.stringify(answer), 200, { "Content-Type": "application/json" });
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((r) => server.once("listening", () => r()));
  if ("keepAliveTimeout" in server) server.keepAliveTimeout = 65_000;
  console.log(`FLOOR http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

const self = fileURLToPath(import.meta.url);

/** This file in another role, in its own process; resolves with its child and the URLs it printed. */
async function spawnRole(
  args: string[],
  marker: string,
  nodeArgs: string[] = [],
): Promise<{ child: ChildProcess; urls: string[] }> {
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", self, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const urls = await new Promise<string[]>((res, rej) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      if (line.startsWith(`${marker} `)) res(line.slice(marker.length + 1).split(" "));
    });
    child.once("exit", (code) => rej(new Error(`${marker} process exited early (code ${code})`)));
  });
  return { child, urls };
}

export interface FloorResult {
  readonly p50: number;
  readonly p99: number;
  /**
   * CPU ms per step of the floor API process: HTTP in and out, the SDK calls, and the canned
   * DynamoDB's HTTP (in-process, as the stack's API process includes its DynamoDB front's).
   */
  readonly apiCpuMs: number;
  /** CPU ms per step of the canned Lambda endpoint's process (the executor's HTTP side). */
  readonly cannedCpuMs: number;
  /** Bytes of the step's request and answer and of each call's request and answer. */
  readonly bytes: Record<string, [number, number]>;
}

/** Captures a real step, then measures its floor over `steps` sequential keep-alive steps. */
export async function measureFloor(opts: {
  steps: number;
  warmup: number;
  /** Profile the floor API process into this folder (node --cpu-prof). */
  cpuProfDir?: string;
}): Promise<FloorResult> {
  const step = await captureStep();
  const dir = mkdtempSync(join(tmpdir(), "coding-env-floor-"));
  const fixture = join(dir, "step.json");
  writeFileSync(fixture, JSON.stringify(step));
  const canned = await spawnRole(["--role", "lambda", "--fixture", fixture], "LAMBDA");
  let floor: { child: ChildProcess; urls: string[] } | undefined;
  try {
    const lambdaUrl = canned.urls[0] as string;
    floor = await spawnRole(
      ["--role", "api", "--fixture", fixture, "--lambda", lambdaUrl],
      "FLOOR",
      opts.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${opts.cpuProfDir}`] : [],
    );
    const base = floor.urls[0] as string;
    const body = JSON.parse(step.stepRequestBody) as unknown;
    const once = async () => {
      const r = await post(base, "/step", body);
      if (r.status !== 200) throw new Error(`floor step failed: ${r.status} ${r.body}`);
    };
    for (let i = 0; i < opts.warmup; i++) await once();
    const apiPid = floor.child.pid as number;
    const cannedPid = canned.child.pid as number;
    const api0 = processCpuMs(apiPid, false);
    const canned0 = processCpuMs(cannedPid, false);
    const times: number[] = [];
    for (let i = 0; i < opts.steps; i++) {
      const t0 = performance.now();
      await once();
      times.push(performance.now() - t0);
    }
    const apiCpuMs = (processCpuMs(apiPid, false) - api0) / opts.steps;
    const cannedCpuMs = (processCpuMs(cannedPid, false) - canned0) / opts.steps;
    times.sort((a, b) => a - b);
    const bytes: Record<string, [number, number]> = {
      step: [Buffer.byteLength(step.stepRequestBody), Buffer.byteLength(step.stepResponseBody)],
    };
    step.calls.forEach(({ kind, exchange }, i) => {
      bytes[`${i + 1}.${kind.replace("DynamoDB_20120810.", "")}`] = [
        Buffer.byteLength(exchange.requestBody),
        Buffer.byteLength(exchange.responseBody),
      ];
    });
    return { p50: percentile(times, 50), p99: percentile(times, 99), apiCpuMs, cannedCpuMs, bytes };
  } finally {
    if (floor) await stopProcess(floor.child, "SIGTERM");
    await stopProcess(canned.child, "SIGTERM");
    agent.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      role: { type: "string" },
      fixture: { type: "string" },
      lambda: { type: "string" },
      steps: { type: "string", default: "3000" },
      warmup: { type: "string", default: "500" },
      "cpu-prof": { type: "string" },
    },
    strict: false,
  });
  if (args.role === "lambda" || args.role === "api") {
    const step = JSON.parse(readFileSync(String(args.fixture), "utf8")) as CapturedStep;
    // An orderly exit, so a --cpu-prof profile is written.
    process.on("SIGTERM", () => process.exit(0));
    if (args.role === "lambda") console.log(`LAMBDA ${await serveCanned(step, lambdaKind)}`);
    else await serveFloorApi(step, String(args.lambda));
    return;
  }
  const load0 = loadAverage()[0];
  const r = await measureFloor({
    steps: Number(args.steps),
    warmup: Number(args.warmup),
    ...(typeof args["cpu-prof"] === "string" ? { cpuProfDir: resolve(args["cpu-prof"]) } : {}),
  });
  console.log(
    "\nprotocol floor of POST /step print(1) (same hops, canned answers, the API's own SDK clients)",
  );
  console.log(`  p50 ${r.p50.toFixed(3)} ms   p99 ${r.p99.toFixed(3)} ms`);
  console.log(
    `  CPU per step: floor API process ${r.apiCpuMs.toFixed(2)} ms (with the canned DynamoDB, as the stack's API process has its DynamoDB front), canned Lambda ${r.cannedCpuMs.toFixed(2)} ms`,
  );
  console.log(
    `  bytes (request/answer): ${Object.entries(r.bytes)
      .map(([k, [a, b]]) => `${k} ${a}/${b}`)
      .join(", ")}`,
  );
  console.log(`  load average ${load0.toFixed(1)} -> ${loadAverage()[0].toFixed(1)}`);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
