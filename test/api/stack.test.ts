// The local stack itself: dynalite on a worker thread, TTL expiry, crash reporting, the `npm start`
// launcher (PORT/HOST/CODING_ENV_DATA_DIR, URLs printed, Ctrl-C stops everything), and the AWS
// Lambda entry answering API Gateway v2 events against the same stack. A restart on one data
// folder is restart.test.ts's.

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import { serve } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../functions/src/app.js";
import { defaultConfig } from "../../functions/src/config.js";
import { buildDeps } from "../../functions/src/deps.js";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { episodePk } from "../../functions/src/store/episode-store.js";
import { call, Episode, errorCode, type StepBody } from "../helpers/api.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

function descendants(pid: number): Array<{ pid: number; ppid: number; cmd: string }> {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      /* gone */
    }
  }
  const out: Array<{ pid: number; ppid: number; cmd: string }> = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent !== p) continue;
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${child}/cmdline`, "utf8").replace(/\0/g, " ");
      } catch {
        /* gone */
      }
      out.push({ pid: child, ppid: parent, cmd });
      walk(child);
    }
  };
  walk(pid);
  return out;
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const start = Date.now(); !condition(); ) {
    if (Date.now() - start > timeoutMs) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * One stack for the suites below that only use one (dynalite's worker thread, the TTL sweep, the
 * second API instance, the Lambda entry and, last, the crashed executor), started when the first of
 * them needs it: each stack start costs a Python executor and a DynamoDB. Its dynalite runs on its
 * own worker thread (the option under test; every other stack of the suite runs it on the API's),
 * its sweep every 300 ms for the TTL case; nothing else here expires.
 */
let shared: Promise<LocalStack> | undefined;
const sharedStack = (): Promise<LocalStack> =>
  (shared ??= startLocalStack({ port: 0, dataDir: null, sweepIntervalMs: 300, dynamodbThread: "worker" }));
afterAll(async () => {
  await (await shared)?.stop();
});

/** `npm start`'s launcher as a user's shell runs it, in its own process. */
function launch(
  dataDir: string,
  opts: { args?: string[]; port?: string } = {},
): { child: ChildProcess; output: string[]; ready: Promise<string> } {
  // As a user's shell runs it: without the variable vitest sets to hide the AWS SDK's Node notice.
  const {
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _,
    CODING_ENV_LOG_REQUESTS: __,
    ...userEnv
  } = process.env;
  const script = join(repoRoot, "scripts/start-local.ts");
  const child = spawn(process.execPath, ["--import", "tsx", script, ...(opts.args ?? [])], {
    cwd: repoRoot,
    env: { ...userEnv, PORT: opts.port ?? "0", HOST: "127.0.0.1", CODING_ENV_DATA_DIR: dataDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (l) => output.push(l));
  const ready = new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output.push(line);
      const m = /API\s+(http:\/\/\S+)/.exec(line);
      if (m?.[1]) res(m[1]);
    });
    child.once("exit", (code) => rej(new Error(`exited early (${code}): ${output.join("\n")}`)));
  });
  return { child, output, ready };
}

/**
 * The launcher cases' launchers, started with the file: one, another with --quiet, and once the
 * first listens a third on its port. Each start compiles the launcher and starts a stack, which on
 * a busy machine takes most of this file's time, so they run while the cases before them do.
 */
const launchers: Array<ReturnType<typeof launch> & { dataDir: string }> = [];
function launchIn(prefix: string, args: string[] = [], port?: string): (typeof launchers)[number] {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const launched = { dataDir, ...launch(dataDir, { args, ...(port ? { port } : {}) }) };
  launched.ready.catch(() => undefined); // an early exit fails the case that awaits it
  launchers.push(launched);
  return launched;
}
let loud: (typeof launchers)[number];
let quiet: (typeof launchers)[number];
/** The third launcher's port, exit code, output and data folder's entries, once it has exited (its streams closed). */
let busy: Promise<{ port: string; exit: number | string | null; output: string[]; data: string[] }>;
beforeAll(() => {
  loud = launchIn("coding-env-start-");
  quiet = launchIn("coding-env-crash-", ["--quiet"]);
  busy = loud.ready.then(async (baseUrl) => {
    const port = new URL(baseUrl).port;
    const launched = launchIn("coding-env-busy-", [], port);
    const closed = new Promise((r) => launched.child.once("close", r));
    const exit = await launched.ready.then(
      () => "listening",
      () => launched.child.exitCode,
    );
    await closed;
    return { port, exit, output: launched.output, data: readdirSync(launched.dataDir) };
  });
  busy.catch(() => undefined); // the case that awaits it reports a failure
});
afterAll(() => {
  for (const { child, dataDir } of launchers) {
    if (child.exitCode === null) child.kill("SIGKILL");
    rmSync(dataDir, { recursive: true, force: true });
  }
});

describe("local stack", () => {
  describe("with dynalite on a worker thread", () => {
    let stack: LocalStack;
    beforeAll(async () => {
      stack = await sharedStack();
    });

    it("runs dynalite on its own worker thread when asked, with the same behaviour", async () => {
      const steps = async () =>
        (await call<{ totals: { steps: number } }>(stack.baseUrl, "GET", "/usage")).body.totals.steps;
      await stack.flushStream();
      const stepsBefore = await steps();
      const ep = await Episode.reset(stack.baseUrl);
      await ep.run("w = 2");
      expect((await ep.run("w * 21")).observation.stdout).toBe("42");
      const stats = await stack.dynamodbStats();
      // The change feed crosses the thread too: the roll-up counts both steps.
      await stack.flushStream();
      expect((await steps()) - stepsBefore).toBe(2);
      const served = Object.values(stats.counts).reduce((sum, count) => sum + count, 0);
      expect(served).toBeGreaterThanOrEqual(4);
      expect(Object.values(stats.ms).some((ms) => ms > 0)).toBe(true);
    });
  });

  describe("with a short TTL", () => {
    let stack: LocalStack;
    beforeAll(async () => {
      stack = await sharedStack();
    });

    it("stores expires_at (DynamoDB TTL) on the episode and forgets it once idle past ttl_s", async () => {
      // Prepare
      const ep = await Episode.reset(stack.baseUrl, { ttl_s: 2 });
      await ep.run("x = 1");
      const ddb = new DynamoDBClient({
        endpoint: stack.dynamodbEndpoint,
        region: "local",
        credentials: stack.credentials,
      });
      const key = { pk: { S: episodePk("local", ep.id) }, sk: { S: "META" } };
      const item = await ddb.send(new GetItemCommand({ TableName: stack.tableName, Key: key }));
      const expiresAt = Number(item.Item?.expires_at?.N);
      expect(expiresAt).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
      expect(expiresAt).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 3);
      // Act: wait until the API no longer finds it, by reads (a read does not renew the TTL; a step would)
      await vi.waitFor(
        async () => expect((await call(stack.baseUrl, "GET", `/episodes/${ep.id}`)).status).toBe(404),
        { timeout: 10_000, interval: 100 },
      );
      // Assess
      const r = await ep.step("x");
      expect(r.status).toBe(404);
      expect(errorCode(r)).toBe("episode_not_found");
      // The sweep runs on its own timer, like DynamoDB's TTL service: wait for it (a loaded machine
      // delays it) rather than assume one interval is enough.
      await vi.waitFor(
        async () => {
          const gone = await ddb.send(new GetItemCommand({ TableName: stack.tableName, Key: key }));
          expect(gone.Item).toBeUndefined();
        },
        { timeout: 10_000, interval: 200 },
      );
      ddb.destroy();
    });
  });
});

describe("two API instances on one table and one executor (as two Lambda instances)", () => {
  let stack: LocalStack;
  let second: ReturnType<typeof serve>;
  let secondUrl: string;
  let destroy: () => void;
  beforeAll(async () => {
    stack = await sharedStack();
    const deps = buildDeps({
      config: { ...defaultConfig, tableName: stack.tableName },
      dynamodbEndpoint: stack.dynamodbEndpoint,
      executorEndpoint: stack.executorEndpoint,
      localCredentials: stack.credentials,
    });
    destroy = deps.destroy;
    second = serve({ fetch: createApp(deps).fetch, port: 0, hostname: "127.0.0.1" });
    await new Promise<void>((r) => second.once("listening", () => r()));
    secondUrl = `http://127.0.0.1:${(second.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => second.close(() => r()));
    destroy();
  });

  it("alternating steps through both see every committed state (no stale copy is used)", async () => {
    // Prepare
    const ep = await Episode.reset(stack.baseUrl);
    await ep.run("log = []");
    // Act: each instance's cached copy is stale every other step
    const outs: string[] = [];
    for (let i = 0; i < 6; i++) {
      const url = i % 2 === 0 ? secondUrl : stack.baseUrl;
      const r = await call<StepBody>(url, "POST", "/step", {
        action: { code: `log.append(${i})\nlog` },
        episode_id: ep.id,
      });
      expect(r.status).toBe(200);
      outs.push(r.body.observation.stdout);
    }
    // Assess
    expect(JSON.parse(outs[5] as string)).toEqual([0, 1, 2, 3, 4, 5]);
    expect((await ep.state()).step_count).toBe(7);
    // a reset on one instance is seen by the other
    await Episode.reset(secondUrl, { episode_id: ep.id });
    const after = await call<StepBody>(stack.baseUrl, "POST", "/step", {
      action: { code: "log" },
      episode_id: ep.id,
    });
    expect(after.body.observation.exit_code).toBe(1);
    expect(after.body.step_count).toBe(1);
  });
});

describe("npm start launcher (scripts/start-local.ts)", () => {
  it("prints the URLs, serves the API and stops every part on Ctrl-C", async () => {
    const { child, output, ready, dataDir } = loud;
    const baseUrl = await ready;
    await new Promise((r) => setTimeout(r, 200));
    expect(output.join("\n")).toContain(`${baseUrl}/web`);
    expect(output.join("\n")).toContain(`${baseUrl}/docs`);
    expect((await call(baseUrl, "GET", "/health")).status).toBe(200);
    // One console line per request: method, path, status, duration, episode, tenant.
    const reset = await call<{ episode_id: string }>(baseUrl, "POST", "/reset", {});
    const episode = reset.body.episode_id;
    await call(baseUrl, "GET", `/episodes/${episode}`);
    await waitFor(() => output.some((l) => l.startsWith(`GET /episodes/${episode} `)));
    expect(output).toContainEqual(
      expect.stringMatching(/^GET \/health 200 \d+\.\dms episode=- tenant=local$/),
    );
    expect(output).toContainEqual(
      expect.stringMatching(new RegExp(`^POST /reset 200 \\d+\\.\\dms episode=${episode} tenant=local$`)),
    );
    // No AWS SDK notice (the launcher hides it; this test's environment does not).
    expect(output.join("\n")).not.toMatch(/NodeVersionSupportWarning|AWS SDK/);
    // A second launcher on the same port: one line naming PORT, a non-zero exit.
    const second = await busy;
    expect(second.port).toBe(new URL(baseUrl).port);
    expect(second.exit).toBe(1);
    expect(second.output).toEqual([
      expect.stringMatching(new RegExp(`port ${second.port} .* in use.*Set PORT`)),
    ]);
    // ...said before any part started: its data folder holds no DynamoDB or S3 data.
    expect(second.data).toEqual([]);
    // The stack's parts: the executor and its workers (tsx's esbuild helper is not one).
    const parts = descendants(child.pid as number).filter((p) => !p.cmd.includes("esbuild"));
    expect(parts.some((p) => p.cmd.includes("coding_env_runtime"))).toBe(true);
    // Act
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGINT");
    // Assess
    expect(await exited).toBe(0);
    await new Promise((r) => setTimeout(r, 300));
    for (const p of parts) expect(alive(p.pid), p.cmd).toBe(false);
    expect(readdirSync(dataDir)).toContain("dynamodb");
  });

  it("reports a crashed part and exits non-zero", async () => {
    const { child, output, ready } = quiet;
    const baseUrl = await ready;
    expect((await call(baseUrl, "GET", "/health")).status).toBe(200);
    await waitFor(() => output.some((l) => l.startsWith("Press Ctrl-C")));
    expect(output.join("\n")).toContain("Logs  off");
    expect(output.filter((l) => l.startsWith("GET /health"))).toEqual([]); // --quiet: no request lines
    const executor = descendants(child.pid as number).find((p) => p.cmd.includes("coding_env_runtime"));
    expect(executor).toBeDefined();
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    process.kill(executor?.pid as number, "SIGKILL");
    expect(await exited).toBe(1);
    expect(output.join("\n")).toMatch(/executor exited/);
  });
});

describe("AWS Lambda entry (functions/src/lambda.ts) on API Gateway v2 events", () => {
  let stack: LocalStack;
  beforeAll(async () => {
    stack = await sharedStack();
  });

  function event(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    return {
      version: "2.0",
      routeKey: "$default",
      rawPath: path,
      rawQueryString: "",
      headers: {
        host: "example.execute-api.us-east-1.amazonaws.com",
        "content-type": "application/json",
        ...headers,
      },
      requestContext: {
        accountId: "123456789012",
        apiId: "example",
        domainName: "example.execute-api.us-east-1.amazonaws.com",
        domainPrefix: "example",
        http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "test" },
        requestId: "id",
        routeKey: "$default",
        stage: "$default",
        time: "27/Nov/2026:00:00:00 +0000",
        timeEpoch: Date.now(),
      },
      isBase64Encoded: false,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    };
  }

  it("answers /health, /reset and /step through the same core", async () => {
    // Prepare: the Lambda reads its clients' settings from the environment, once.
    Object.assign(process.env, {
      CODING_ENV_AUTH: "off",
      CODING_ENV_TABLE: stack.tableName,
      CODING_ENV_DYNAMODB_ENDPOINT: stack.dynamodbEndpoint,
      CODING_ENV_EXECUTOR_ENDPOINT: stack.executorEndpoint,
      CODING_ENV_LOCAL_ACCESS_KEY_ID: stack.credentials.accessKeyId,
    });
    type Result = { statusCode: number; body: string; cookies?: string[]; headers?: Record<string, string> };
    const { handler: lambdaHandler } = await import("../../functions/src/lambda.js");
    const handler = lambdaHandler as unknown as (event: unknown) => Promise<Result>;
    // Act
    const health = await handler(event("GET", "/health"));
    const reset = await handler(event("POST", "/reset", {}));
    const id = (JSON.parse(reset.body) as { episode_id: string }).episode_id;
    const step = await handler(event("POST", "/step", { action: { code: "6 * 7" } }, { "x-episode-id": id }));
    // Assess
    expect(health.statusCode).toBe(200);
    expect(JSON.parse(health.body)).toEqual({ status: "healthy", auth_required: false });
    expect(reset.statusCode).toBe(200);
    expect(JSON.stringify(reset.cookies ?? reset.headers)).toContain("coding_env_episode=");
    expect(step.statusCode).toBe(200);
    expect(JSON.parse(step.body)).toMatchObject({
      observation: { stdout: "42", exit_code: 0 },
      step_count: 1,
    });
  });
});

describe("a crashed part", () => {
  it("reports a crashed executor through `crashed`", async () => {
    // The shared stack's last use: its executor ends here.
    const stack = await sharedStack();
    const pid = stack.childPids[0] as number;
    process.kill(pid, "SIGKILL");
    const exit = await stack.crashed;
    expect(exit.part).toBe("executor");
    expect(exit.message).toContain("exited");
  });
});
