// CPU per step of the local DynamoDB alone (its HTTP server side, the front and dynalite), robust to
// a loaded machine: the front runs in a process of its own, and the requests of a trivial step (the
// three the API makes: the Query of the episode's newest records, the conditional PutItem of the
// step claim, the conditional PutItem of the step record, with the stack's change-feed listener on)
// are sent by this process through the AWS SDK. The server process's CPU (user + system, from
// /proc) over N steps, divided by N, is what the front costs per step, whatever the machine's load
// does to wall time. The API's side of those requests (the SDK) is not in it.
//
// A/B: `--baseline <checkout>` (e.g. `git archive <commit> | tar -x -C /tmp/base`, with a
// node_modules symlink) is measured in rounds interleaved with this checkout; the medians compare.
//
// `--cpu-prof <dir>` profiles this checkout's server process (node --cpu-prof).
//
// Run: npx tsx bench/dynamodb/server-cpu.ts [--steps 3000] [--warmup 500] [--rounds 3] [--baseline DIR]...
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { basename, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DynamoDBClient, PutItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import { ensureTable } from "../../functions/src/local/stack.js";
import { median } from "../api/client.js";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ACCESS_KEY_ID = "BENCHKEY0000000000";
const TABLE = "coding-env";

const { values: args } = parseArgs({
  options: {
    steps: { type: "string", default: "3000" },
    warmup: { type: "string", default: "500" },
    rounds: { type: "string", default: "3" },
    baseline: { type: "string", multiple: true },
    serve: { type: "string" },
    "cpu-prof": { type: "string" },
  },
});

/** Child mode: the front of checkout `root`, in memory, with a change-feed listener as the stack has. */
async function serve(root: string): Promise<void> {
  const { startDynalite } = (await import(
    `${root}/functions/src/local/dynalite-server.ts`
  )) as typeof import("../../functions/src/local/dynalite-server.js");
  const ddb = await startDynalite({ path: null, accessKeyId: ACCESS_KEY_ID });
  let records = 0;
  ddb.onChange((r) => {
    records += r.length;
  });
  process.stdout.write(`${JSON.stringify({ endpoint: ddb.endpoint })}\n`);
  process.on("SIGTERM", () => {
    void ddb.stop().then(() => process.exit(records >= 0 ? 0 : 1));
  });
}

function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ
}

async function startServer(
  root: string,
  nodeArgs: string[],
): Promise<{ child: ChildProcess; endpoint: string }> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, "--import", "tsx", fileURLToPath(import.meta.url), "--serve", root],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const endpoint = await new Promise<string>((res, rej) => {
    let buf = "";
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const line = buf.split("\n")[0];
      if (buf.includes("\n") && line) res((JSON.parse(line) as { endpoint: string }).endpoint);
    });
    child.once("exit", (code) => rej(new Error(`server exited ${code}`)));
  });
  return { child, endpoint };
}

const snapshot =
  "Q0VOVgEAOnsicnVudGltZSI6IjEuMC4wK3B5My4xMSIsInB5dGhvbiI6IjMuMTEiLCJjb2RlYyI6Inp8bnxwIn1wAAAAAHoAAAAAAAAAOAAAAAAAAAA6eAFrYJ2qzwABtVM0ejji4/MSc1Pj46eAmLmJmXkgJnt8fEp+MpDlV1o7JYMxg6m4bYoeAPwoE0w=";
const record =
  "H4sIAAAAAAAEA22P3WrDMAxG3+W72sANdrZ2i55jV/vBuLEKhsQOstINQt59pBmDwS6F0DlHC/oSGYRJUtY7dw+Dcq4s16CpZNCCqrHMCoJ7zzDbyCIgwIC/kvodYFcD4c8gEWQbZxBLZtAlDJUNRtYQgwbQshqkfCkbOc5ys/ixglxjH54NNI0c/U34c7v7vcqc+6Acf6F7yT+LKGWaOPprkBTOA1fQ28e6pQdRjj5s37S2PR1ce7Dti+3IdnQ8Nq57eoX523V6NBh6kMrM6zdp0TksLwEAAA==";

/** The three requests of one trivial step (as captured from the API), version `v` of episode `pk`. */
async function step(client: DynamoDBClient, pk: string, incarnation: string, v: number): Promise<void> {
  const now = Date.now();
  await client.send(
    new QueryCommand({
      TableName: TABLE,
      Limit: 2,
      ConsistentRead: true,
      ScanIndexForward: false,
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :lo AND :hi",
      ExpressionAttributeValues: { ":pk": { S: pk }, ":lo": { S: "M#" }, ":hi": { S: "META" } },
    }),
  );
  await client.send(
    new PutItemCommand({
      TableName: TABLE,
      Item: {
        pk: { S: pk },
        sk: { S: "CLAIM" },
        incarnation: { S: incarnation },
        base_version: { N: String(v) },
        until_ms: { N: String(now + 38_000) },
        attempt_id: { S: now.toString(16).padStart(16, "0") },
        expires_at: { N: String(Math.floor(now / 1000) + 39) },
      },
      ConditionExpression:
        "attribute_not_exists(pk) OR until_ms < :now OR incarnation < :inc OR (incarnation = :inc AND base_version < :v)",
      ExpressionAttributeValues: {
        ":now": { N: String(now) },
        ":inc": { S: incarnation },
        ":v": { N: String(v) },
      },
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    }),
  );
  await client.send(
    new PutItemCommand({
      TableName: TABLE,
      Item: {
        pk: { S: pk },
        sk: { S: `M#${incarnation}#${String(v + 1).padStart(10, "0")}` },
        tenant: { S: "local" },
        day: { S: "2026-12-02" },
        executor_ms: { N: "2" },
        state_bytes: { N: "143" },
        at: { N: String(now) },
        rec: { B: Buffer.from(record, "base64") },
        snap: { B: Buffer.from(snapshot, "base64") },
      },
      ConditionExpression: "attribute_not_exists(pk)",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD",
    }),
  );
}

async function measure(root: string, steps: number, warmup: number, nodeArgs: string[]): Promise<number> {
  const { child, endpoint } = await startServer(root, nodeArgs);
  try {
    const client = new DynamoDBClient({
      endpoint,
      region: "local",
      credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: "bench" },
    });
    await ensureTable(client, TABLE);
    const pk = "EP#local#ep_2b7756085b36fcab8eda75d1";
    const incarnation = "01a2360480c1f5486073";
    for (let v = 0; v < warmup; v++) await step(client, pk, incarnation, v);
    const before = cpuMs(child.pid as number);
    for (let v = warmup; v < warmup + steps; v++) await step(client, pk, incarnation, v);
    const after = cpuMs(child.pid as number);
    client.destroy();
    return (after - before) / steps;
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

async function main(): Promise<void> {
  const variants = [
    ...(args.baseline ?? []).map((b) => ({ name: basename(resolve(b)), root: resolve(b) })),
    { name: "this checkout", root: repoRoot },
  ];
  const prof =
    typeof args["cpu-prof"] === "string" ? ["--cpu-prof", `--cpu-prof-dir=${resolve(args["cpu-prof"])}`] : [];
  const results = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const load0 = loadavg()[0] as number;
  const rounds = Number(args.rounds);
  for (let round = 1; round <= rounds; round++) {
    // Alternate which variant goes first, so a trend in the machine's load favours neither.
    const order = round % 2 ? variants : [...variants].reverse();
    for (const v of order) {
      const ms = await measure(
        v.root,
        Number(args.steps),
        Number(args.warmup),
        v.root === repoRoot ? prof : [],
      );
      results.get(v.name)?.push(ms);
      console.log(`round ${round} ${v.name.padEnd(16)} ${ms.toFixed(3)} ms CPU/step in the DynamoDB server`);
    }
  }
  console.log(`\nDynamoDB server CPU per trivial step (3 requests), median of ${rounds} round(s):`);
  for (const v of variants)
    console.log(`  ${v.name.padEnd(16)} ${median(results.get(v.name) ?? []).toFixed(3)} ms`);
  console.log(`  load average ${load0.toFixed(1)} -> ${(loadavg()[0] as number).toFixed(1)}`);
}

if (typeof args.serve === "string") await serve(args.serve);
else await main();
