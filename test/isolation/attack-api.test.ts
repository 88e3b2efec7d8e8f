// Attacks through the public API by one tenant against another, on a keyed local stack (root
// mode, the local default): two tenants with their own API keys, the attacker's cells with all
// of Python. Each asserts the safe outcome; the runtime tests (python-runtime/tests/test_attack_*.py)
// fail without the protections named here.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { clientFor } from "../tenancy/helpers/dynalite-table.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe.skipIf(!isRoot)("one tenant attacking another through the API (root mode)", () => {
  let stack: LocalStack;
  let client: DynamoDBClient;
  let attacker: string;
  let victim: string;

  beforeAll(async () => {
    stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
    client = clientFor(stack.dynamodbEndpoint, stack.credentials);
    const keys = dynamoDbApiKeyStore({ client, tableName: stack.tableName });
    attacker = (await keys.create({ tenantId: `attacker-${process.pid}` })).key;
    victim = (await keys.create({ tenantId: `victim-${process.pid}` })).key;
  });

  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  async function post(
    key: string,
    path: string,
    body: unknown,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${stack.baseUrl}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  async function run(key: string, code: string): Promise<Record<string, unknown>> {
    const reset = await post(key, "/reset", { policy: "full" });
    expect(reset.status, JSON.stringify(reset.body)).toBe(200);
    const step = await post(key, "/step", { episode_id: reset.body.episode_id, action: { code } });
    expect(step.status, JSON.stringify(step.body)).toBe(200);
    return step.body.observation as Record<string, unknown>;
  }

  it("a forged reply nested past the JSON parser's limit is the attacker's crashed step, not a 5xx", async () => {
    // Prepare
    const forge = [
      "import os, struct, time",
      "header = b'[' * 300000",
      "os.write(3, struct.pack('!II', len(header), 0) + header)",
      "time.sleep(1)",
    ].join("\n");
    // Act
    const forged = await run(attacker, forge);
    const after = await run(victim, "6 * 7");
    // Assert
    expect(forged).toMatchObject({ exit_code: 1 });
    expect(String(forged.stderr)).toContain("private channel");
    expect(after).toMatchObject({ exit_code: 0, stdout: "42" });
  });

  it("nothing the attacker writes outside its private directories lands on the host", async () => {
    // Prepare: a world-writable directory of the host (as a build's output directories were).
    const target = mkdtempSync("/var/lib/coding-env-attack-");
    try {
      const { chmodSync } = await import("node:fs");
      chmodSync(target, 0o777);
      // Act
      const out = await run(
        attacker,
        `try:\n    open(${JSON.stringify(`${target}/planted.py`)}, 'w').write('x')\n    print('written')\nexcept OSError as e:\n    print('refused')`,
      );
      // Assert
      expect([out.exit_code, String(out.stdout).trim()]).toEqual([0, "refused"]);
      expect(readdirSync(target)).toEqual([]);
    } finally {
      rmSync(target, { recursive: true, force: true });
    }
  });

  it("no key or message queue can be left for the next holder of a uid", async () => {
    // Act
    const out = await run(
      attacker,
      [
        "import ctypes",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "libc.syscall.restype = ctypes.c_long",
        "rt = ctypes.CDLL('librt.so.1', use_errno=True)",
        "print(libc.syscall(248, b'user', b'planted', b'A-secret', 8, -4), rt.mq_open(b'/planted', 0o102, 0o600, None))",
      ].join("\n"),
    );
    // Assert
    expect([out.exit_code, String(out.stdout).trim()]).toEqual([0, "-1 -1"]);
  });
});
