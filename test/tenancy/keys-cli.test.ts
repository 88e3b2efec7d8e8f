import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { type ApiKeyStore, isWellFormedApiKey } from "../../functions/src/tenancy/index.js";
import { main as keysMain } from "../../scripts/keys.js";
import { startTestTable, type TestTable } from "./helpers/dynalite-table.js";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));

let table: TestTable;
let store: ApiKeyStore;

beforeAll(async () => {
  table = await startTestTable("coding-env-cli");
  store = dynamoDbApiKeyStore({ client: table.client, tableName: table.tableName });
});
afterAll(async () => {
  await table.stop();
});

type CliResult = { code: number; stdout: string; stderr: string };

function cliEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { ...env, CODING_ENV_TABLE: table.tableName, CODING_ENV_DYNAMODB_ENDPOINT: table.endpoint };
}

/** The command's `main` in this process, its output captured (a process per call costs seconds). */
async function keysCli(...args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const writes = [process.stdout.write, process.stderr.write];
  const capture = (into: string[]) =>
    ((chunk: string | Uint8Array) => {
      into.push(String(chunk));
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture(out);
  process.stderr.write = capture(err);
  try {
    const code = await keysMain(args, cliEnv(process.env));
    return { code, stdout: out.join(""), stderr: err.join("") };
  } finally {
    [process.stdout.write, process.stderr.write] = writes as [
      typeof process.stdout.write,
      typeof process.stderr.write,
    ];
  }
}

/** The command as a user's shell runs it: its own process, without the variable vitest sets to hide the AWS SDK's Node notice. */
async function keysCliProcess(...args: string[]): Promise<CliResult> {
  const { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: _, ...userEnv } = process.env;
  try {
    const out = await run(process.execPath, ["--import", "tsx", "scripts/keys.ts", ...args], {
      cwd: repoRoot,
      env: cliEnv(userEnv),
    });
    return { code: 0, stdout: out.stdout, stderr: out.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("npm run keys", () => {
  it("create prints the new key as the last line; it works and carries the quota overrides", async () => {
    const out = await keysCli("create", "--tenant", "acme", "--name", "laptop", "--steps-per-day", "5");
    expect(out.code).toBe(0);
    const key = out.stdout.trimEnd().split("\n").at(-1) ?? "";
    expect(isWellFormedApiKey(key)).toBe(true);
    const record = await store.findByKey(key);
    expect(record).toMatchObject({
      tenantId: "acme",
      name: "laptop",
      revoked: false,
      quotas: { stepsPerDay: 5 },
    });
  });

  it("list shows keys without secrets, as a table or JSON, filtered by tenant", async () => {
    const created = await keysCli("create", "--tenant", "t-list");
    const key = created.stdout.trimEnd().split("\n").at(-1) ?? "";
    const record = await store.findByKey(key);
    const json = await keysCli("list", "--tenant", "t-list", "--json");
    expect(json.code).toBe(0);
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(listed).toEqual([
      expect.objectContaining({ key_id: record?.keyId, tenant_id: "t-list", revoked: false }),
    ]);
    expect(json.stdout).not.toContain(key);
    const text = await keysCli("list");
    expect(text.stdout).toContain(record?.keyId);
    expect(text.stdout).toContain("acme");
    expect(text.stdout).not.toContain(key);
  });

  it("--json prints one JSON document and nothing else, on stdout and stderr alike", async () => {
    const created = await keysCliProcess("create", "--tenant", "t-json", "--json");
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const { key, key_id } = JSON.parse(created.stdout) as { key: string; key_id: string };
    expect(isWellFormedApiKey(key)).toBe(true);
    const listed = await keysCli("list", "--tenant", "t-json", "--json");
    expect(listed.stderr).toBe("");
    expect(JSON.parse(listed.stdout)).toEqual([expect.objectContaining({ key_id, revoked: false })]);
    const revoked = await keysCli("revoke", key_id, "--json");
    expect(revoked.stderr).toBe("");
    expect(JSON.parse(revoked.stdout)).toMatchObject({ key_id, revoked: true });
  });

  it("revoke by key id marks the key revoked", async () => {
    const created = await keysCli("create", "--tenant", "t-revoke");
    const key = created.stdout.trimEnd().split("\n").at(-1) ?? "";
    const keyId = (await store.findByKey(key))?.keyId ?? "";
    const out = await keysCli("revoke", keyId);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain(keyId);
    expect((await store.findByKey(key))?.revoked).toBe(true);
  });

  it("exits 2 with a clear message on bad usage, 1 on an unknown key", async () => {
    expect(await keysCli("create")).toMatchObject({ code: 2, stderr: expect.stringContaining("--tenant") });
    expect(await keysCli("create", "--tenant", "x", "--steps-per-day", "0")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("steps_per_day"),
    });
    expect(await keysCli("frobnicate")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("Unknown command"),
    });
    expect(await keysCli("revoke", "key_000000000000")).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("No API key matches"),
    });
    const help = await keysCli("--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("CODING_ENV_DYNAMODB_ENDPOINT");
  });
});
