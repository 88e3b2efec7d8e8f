// The local stack's parts: the start-up secret the local DynamoDB and executor require (and the
// stack file that records it), metering from the change stream, N API instances behind one port,
// and the executor and its workers dying with the stack however it ends. The Lambda-mode executor
// is test/isolation/lambda-mode*.test.ts's.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  BatchGetItemCommand,
  DynamoDBClient,
  ListTablesCommand,
  PutItemCommand,
  ScanCommand,
} from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { main as keysMain } from "../../scripts/keys.js";
import { call, Episode, type StepBody } from "../helpers/api.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Every process under `pid` (by parent links in /proc), with its command line. */
function descendants(pid: number): Array<{ pid: number; cmd: string }> {
  const parents = new Map<number, number>();
  for (const name of readdirProc()) {
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      /* gone */
    }
  }
  const out: Array<{ pid: number; cmd: string }> = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent !== p) continue;
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${child}/cmdline`, "utf8").replace(/\0/g, " ");
      } catch {
        /* gone */
      }
      out.push({ pid: child, cmd });
      walk(child);
    }
  };
  walk(pid);
  return out;
}

function readdirProc(): string[] {
  return readdirSync("/proc").filter((n) => /^\d+$/.test(n));
}

function alive(pid: number): boolean {
  try {
    // A zombie still answers kill(0): count it as dead (it runs nothing).
    return !readFileSync(`/proc/${pid}/stat`, "utf8").includes(") Z ");
  } catch {
    return false;
  }
}

async function waitUntil(check: () => boolean, limitMs: number): Promise<boolean> {
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

describe("start-up secret", () => {
  let stack: LocalStack;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "coding-env-secret-"));
    // Keys on, so the key `npm run keys` makes is checked by the API (below).
    stack = await startLocalStack({ port: 0, dataDir, auth: true });
  });
  afterAll(async () => {
    await stack.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("the local DynamoDB refuses a request without the stack's access key id (403 UnrecognizedClientException)", async () => {
    const guess = new DynamoDBClient({
      endpoint: stack.dynamodbEndpoint,
      region: "local",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
      maxAttempts: 1,
    });
    await expect(guess.send(new ListTablesCommand({}))).rejects.toMatchObject({
      name: "UnrecognizedClientException",
    });
    guess.destroy();
    const unsigned = await fetch(stack.dynamodbEndpoint, {
      method: "POST",
      headers: {
        "x-amz-target": "DynamoDB_20120810.ListTables",
        "content-type": "application/x-amz-json-1.0",
      },
      body: "{}",
    });
    expect(unsigned.status).toBe(403);
    const owner = new DynamoDBClient({
      endpoint: stack.dynamodbEndpoint,
      region: "local",
      credentials: stack.credentials,
    });
    expect((await owner.send(new ListTablesCommand({}))).TableNames).toContain(stack.tableName);
    owner.destroy();
  });

  it("the executor refuses an Invoke without the stack's access key id (403)", async () => {
    const invoke = (authorization?: string) =>
      fetch(`${stack.executorEndpoint}/2015-03-31/functions/coding-env-executor/invocations`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
        body: JSON.stringify({ op: "discard", episode_id: "nope", tenant_id: "local" }),
      });
    expect((await invoke()).status).toBe(403);
    expect(
      (await invoke("AWS4-HMAC-SHA256 Credential=local/19700101/local/lambda/aws4_request")).status,
    ).toBe(403);
    const own = await invoke(
      `AWS4-HMAC-SHA256 Credential=${stack.credentials.accessKeyId}/19700101/local/lambda/aws4_request`,
    );
    expect(own.status).toBe(200);
  });

  it("npm run keys finds the running stack through its data folder and creates a key in its DynamoDB", async () => {
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string) => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await keysMain(["create", "--tenant", "acme"], {
        CODING_ENV_DATA_DIR: dataDir,
        PATH: process.env.PATH,
      });
    } finally {
      process.stdout.write = write;
    }
    expect(code).toBe(0);
    const key = written.join("").trim().split("\n").pop() ?? "";
    // The key opens this stack's API as the tenant it was made for (a key written to another
    // DynamoDB, or none, would be refused: keys are on).
    const usage = await call<{ tenant_id: string }>(stack.baseUrl, "GET", "/usage", undefined, {
      authorization: `Bearer ${key}`,
    });
    expect(usage.status).toBe(200);
    expect(usage.body.tenant_id).toBe("acme");
    const wrong = await call(stack.baseUrl, "GET", "/usage", undefined, { authorization: `Bearer ${key}x` });
    expect(wrong.status).toBe(401);
  });

  it("records its endpoints and credentials in <data>/stack.json, readable by its owner only", () => {
    const path = join(dataDir, "stack.json");
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const info = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    expect(info).toMatchObject({
      pid: process.pid,
      baseUrl: stack.baseUrl,
      dynamodbEndpoint: stack.dynamodbEndpoint,
      executorEndpoint: stack.executorEndpoint,
      tableName: stack.tableName,
      accessKeyId: stack.credentials.accessKeyId,
      secretAccessKey: stack.credentials.secretAccessKey,
    });
  });
});

/**
 * One stack for the two suites below (each stack start costs a Python executor and a DynamoDB): a
 * long stream timer, so only flushStream() hands records over and the counts are the roll-up's, and
 * a BatchGetItem response limit of 1 KiB (the API's own batch reads then take their retry loops).
 */
let tuned: Promise<LocalStack> | undefined;
const tunedStack = (): Promise<LocalStack> =>
  (tuned ??= startLocalStack({
    port: 0,
    dataDir: null,
    streamIntervalMs: 3_600_000,
    dynamodbBatchGetMaxBytes: 1024,
  }));
afterAll(async () => {
  await (await tuned)?.stop();
});

describe("metering from the change stream", () => {
  it("usage counts every step once the stream's batch is processed; a TTL removal cleans up the episode", async () => {
    const stack = await tunedStack();
    const usage = async () =>
      (await call<{ totals: { steps: number; executions: number } }>(stack.baseUrl, "GET", "/usage")).body
        .totals;
    // A TTL no slow machine reaches between steps; the sweep below runs with a clock past it.
    const ep = await Episode.reset(stack.baseUrl, { ttl_s: 3_600 });
    await ep.run("a = 1");
    await ep.run("a + 1");
    expect((await usage()).steps).toBe(0);
    await stack.flushStream();
    const totals = await usage();
    expect(totals.steps).toBe(2);
    expect(totals.executions).toBe(2);
    // Act: two hours later the TTL has passed; the sweep removes the head as the TTL service, the roll-up the rest
    expect(await stack.sweepExpired(Date.now() + 7_200_000)).toBeGreaterThanOrEqual(1);
    await stack.flushStream();
    // Assess
    const ddb = new DynamoDBClient({
      endpoint: stack.dynamodbEndpoint,
      region: "local",
      credentials: stack.credentials,
    });
    const left = await ddb.send(
      new ScanCommand({
        TableName: stack.tableName,
        FilterExpression: "contains(pk, :id)",
        ExpressionAttributeValues: { ":id": { S: ep.id } },
      }),
    );
    ddb.destroy();
    expect(left.Items ?? []).toEqual([]);
    expect((await ep.step("a")).status).toBe(404);
  });
});

describe("dynamodbBatchGetMaxBytes", () => {
  it("makes the stack's BatchGetItem return partial results and UnprocessedKeys past the given size", async () => {
    const stack = await tunedStack();
    const ddb = new DynamoDBClient({
      endpoint: stack.dynamodbEndpoint,
      region: "local",
      credentials: stack.credentials,
    });
    try {
      const keys = ["a", "b", "c"].map((sk) => ({ pk: { S: "batch-test" }, sk: { S: sk } }));
      for (const k of keys) {
        await ddb.send(
          new PutItemCommand({ TableName: stack.tableName, Item: { ...k, d: { S: "x".repeat(800) } } }),
        );
      }
      const out = await ddb.send(
        new BatchGetItemCommand({ RequestItems: { [stack.tableName]: { Keys: keys } } }),
      );
      expect(out.Responses?.[stack.tableName]).toHaveLength(1);
      expect(out.UnprocessedKeys?.[stack.tableName]?.Keys).toHaveLength(2);
    } finally {
      ddb.destroy();
    }
  });
});

/**
 * `npm start` with two API instances, launched with the file (its compile and its three processes'
 * start overlap the suites before the one that uses it), for the proxy's cases and then SIGKILL.
 */
let launched: { child: ChildProcess; dataDir: string; ready: Promise<string> } | undefined;
beforeAll(() => {
  const dataDir = mkdtempSync(join(tmpdir(), "coding-env-kill-"));
  const child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "scripts/start-local.ts")], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: "0",
      HOST: "127.0.0.1",
      CODING_ENV_DATA_DIR: dataDir,
      CODING_ENV_API_INSTANCES: "2",
    },
    stdio: ["ignore", "pipe", "ignore"],
  });
  const ready = new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      const m = /API\s+(http:\/\/\S+)/.exec(line);
      if (m?.[1]) res(m[1]);
    });
    child.once("exit", (code) => rej(new Error(`exited early (${code})`)));
  });
  ready.catch(() => undefined); // the suite that awaits it reports a failure
  launched = { child, dataDir, ready };
});
afterAll(() => {
  if (launched?.child.exitCode === null) launched.child.kill("SIGKILL");
  if (launched) rmSync(launched.dataDir, { recursive: true, force: true });
});

describe("npm start with two API instances behind one port (CODING_ENV_API_INSTANCES=2)", () => {
  // One launched stack for the proxy's cases, then killed with SIGKILL: its parts must all end.
  let child: ChildProcess;
  let baseUrl: string;
  beforeAll(async () => {
    child = (launched as NonNullable<typeof launched>).child;
    baseUrl = await (launched as NonNullable<typeof launched>).ready;
  });

  it("sends requests in turn to two separate processes, even on one keep-alive connection", async () => {
    const instances: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = await fetch(`${baseUrl}/health`);
      expect(r.status).toBe(200);
      instances.push(String(r.headers.get("x-coding-env-instance")));
    }
    expect(new Set(instances)).toEqual(new Set(["0", "1"]));
    for (let i = 1; i < instances.length; i++) expect(instances[i]).not.toBe(instances[i - 1]);
    // 2 instances, distinct processes under the stack's (stack.childPids: admission.test.ts)
    const apis = descendants(child.pid as number).filter((p) => p.cmd.includes("api-instance"));
    expect(new Set(apis.map((p) => p.pid)).size).toBe(2);
  });

  it("an episode stepped through both instances keeps every committed state", async () => {
    const ep = await Episode.reset(baseUrl);
    await ep.run("log = []");
    let last = "";
    for (let i = 0; i < 4; i++) {
      const r = await call<StepBody>(baseUrl, "POST", "/step", {
        action: { code: `log.append(${i})\nlog` },
        episode_id: ep.id,
      });
      expect(r.status).toBe(200);
      last = r.body.observation.stdout;
    }
    expect(JSON.parse(last)).toEqual([0, 1, 2, 3]);
  });

  it("serves OpenEnv's WebSocket /ws through the proxy", async () => {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/ws`);
    const replies: Array<{ type: string; data: { observation?: { stdout: string } } }> = [];
    const next = () =>
      new Promise<(typeof replies)[number]>((res) =>
        ws.once("message", (data) => res(JSON.parse(String(data)))),
      );
    await new Promise<void>((res, rej) => {
      ws.once("open", () => res());
      ws.once("error", rej);
    });
    try {
      ws.send(JSON.stringify({ type: "reset", data: {} }));
      replies.push(await next());
      ws.send(JSON.stringify({ type: "step", data: { code: "6 * 7" } }));
      replies.push(await next());
      expect(replies[0]?.type).toBe("observation");
      expect(replies[1]?.data.observation?.stdout).toBe("42");
    } finally {
      ws.close();
    }
  });

  it("a stack killed with SIGKILL leaves no executor, zygote, worker or API instance behind", async () => {
    // A warm worker exists once an episode has stepped.
    const ep = await Episode.reset(baseUrl);
    expect((await ep.run("1 + 1")).observation.stdout).toBe("2");
    const parts = descendants(child.pid as number).filter((p) => !p.cmd.includes("esbuild"));
    expect(parts.some((p) => p.cmd.includes("coding_env_runtime"))).toBe(true);
    expect(parts.length).toBeGreaterThanOrEqual(2); // the executor and its zygote at least
    expect(parts.filter((p) => p.cmd.includes("api-instance"))).toHaveLength(2);
    // Act
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGKILL");
    await exited;
    // Assess: every one of them ends (by the parent-death signal and the broken control channels)
    await waitUntil(() => parts.every((p) => !alive(p.pid)), 20_000);
    for (const p of parts) expect(alive(p.pid), p.cmd).toBe(false);
  });
});
