// Large state in S3 end to end through the core: the episode service with the DynamoDB repository
// (dynalite), the real executor (local server, or the Lambda-mode harness with
// CODING_ENV_EXECUTOR_MODE=lambda) and the local S3 server. The executor's Invoke requests and
// replies are measured on the real Lambda client: a large state never rides in them. A fork names
// its source's object and diverges; delete removes an episode's objects but one a fork shares; a
// state over the cap is 413 with the previous state intact; a retried step writes nothing more.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import type { S3Client } from "@aws-sdk/client-s3";
import { QueryCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig, MAX_STATE_BYTES_IN_S3 } from "../../functions/src/config.js";
import { EpisodeService } from "../../functions/src/core/episodes.js";
import { LambdaExecutor } from "../../functions/src/executor/executor.js";
import {
  type ExecutorProcess,
  startExecutor,
  stopExecutor,
} from "../../functions/src/local/executor-process.js";
import { type LocalS3, startLocalS3 } from "../../functions/src/local/s3-server.js";
import { DynamoDbEpisodeRepository } from "../../functions/src/store/dynamodb-episode-repository.js";
import { episodePk } from "../../functions/src/store/layout.js";
import { REUSE_MAX_AGE_MS } from "../../functions/src/store/s3-lifecycle.js";
import { createStateS3Client, S3StateStore } from "../../functions/src/store/s3-state.js";
import { startTestTable, type TestTable } from "../tenancy/helpers/dynalite-table.js";

const repoRoot = resolve(import.meta.dirname, "../..");
const MiB = 1024 * 1024;
/**
 * The large array's size: past Lambda's 6 MB payload (and 16 KB, what a payload here may hold), so
 * a state that rode in one would show. A 100 MiB one across a whole stack's restart is restart.test.ts's.
 */
const LARGE_MIB = 16;
const T = "tenant-large";
const credentials = {
  accessKeyId: randomBytes(16).toString("hex"),
  secretAccessKey: randomBytes(30).toString("base64url"),
};

let table: TestTable;
let dir: string;
let s3: LocalS3;
let s3Client: S3Client;
let objects: S3StateStore;
let executor: ExecutorProcess;
let lambda: LambdaClient;
/** Bytes of every Invoke request and reply the API's Lambda client sent and received. */
const payloads: Array<{ request: number; reply: number }> = [];

function service(maxStateBytes = MAX_STATE_BYTES_IN_S3) {
  const repository = new DynamoDbEpisodeRepository({
    doc: table.doc,
    tableName: table.tableName,
    maxStateBytes,
    stateObjects: objects,
  });
  const episodes = new EpisodeService({
    repository,
    executor: new LambdaExecutor({ client: lambda, functionName: "coding-env-executor" }),
    config: { ...defaultConfig, maxStateBytes },
  });
  return { repository, episodes };
}

async function run(episodes: EpisodeService, id: string, code: string, requestId?: string) {
  const { body } = await episodes.step(T, id, {
    code,
    timeout_s: 120,
    ...(requestId !== undefined ? { request_id: requestId } : {}),
  });
  return body;
}

beforeAll(async () => {
  table = await startTestTable("coding-env-large-state");
  dir = mkdtempSync(join(tmpdir(), "coding-env-large-state-"));
  s3 = await startLocalS3({ directory: dir, bucket: "state", credentials });
  s3Client = createStateS3Client({ region: "us-east-1", endpoint: s3.endpoint, credentials });
  objects = new S3StateStore({ client: s3Client, bucket: "state" });
  executor = await startExecutor({
    repoRoot,
    mode: process.env.CODING_ENV_EXECUTOR_MODE === "lambda" ? "lambda" : "local",
    log: false,
    maxWarmWorkers: 4,
    accessKeyId: credentials.accessKeyId,
    s3Endpoint: s3.endpoint, // Lambda mode: the harness's stand-in for the S3 gateway endpoint
  });
  lambda = new LambdaClient({
    region: "us-east-1",
    endpoint: executor.endpoint,
    credentials,
    maxAttempts: 1,
  });
  // Observe (not replace) the real client: the size of what goes to the executor and back.
  const send = lambda.send.bind(lambda) as (command: InvokeCommand, options?: unknown) => Promise<unknown>;
  lambda.send = (async (command: InvokeCommand, options?: unknown) => {
    const out = (await send(command, options)) as { Payload?: Uint8Array };
    payloads.push({
      request: (command.input.Payload as Uint8Array | undefined)?.length ?? 0,
      reply: out.Payload?.length ?? 0,
    });
    return out;
  }) as typeof lambda.send;
});

afterAll(async () => {
  if (executor) await stopExecutor(executor);
  lambda?.destroy();
  await s3?.close();
  s3Client?.destroy();
  await table?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("large state in S3 through the core", () => {
  it("a 16 MiB array never rides in the executor's payload; a fork shares its object and diverges; delete keeps only the shared object", async () => {
    const { repository, episodes } = service();
    const { episode_id: id } = await episodes.reset(T, { policy: "full" });
    const n = (LARGE_MIB * MiB) / 8;
    // Random integers: incompressible, so the object really is that large.
    const make = `import numpy as np\nbig = np.random.default_rng(3).integers(0, 2**62, ${n}, dtype=np.int64)\nlast = int(big[-1])\nprint(big.nbytes)`;

    // Act: make the state, then change it (warm), then fork and change the fork.
    payloads.length = 0;
    const made = await run(episodes, id, make);
    expect(made.observation).toEqual({ stdout: `${LARGE_MIB * MiB}\n`, stderr: "", exit_code: 0 });
    const stored = (await repository.load(T, id, { nowMs: Date.now() }))?.episode;
    expect(stored?.snapshot).toBeNull();
    expect(stored?.stateObject?.bytes).toBeGreaterThan(LARGE_MIB * MiB);
    expect(stored?.stateObject?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await objects.listEpisode(T, id)).toEqual([stored?.stateObject?.key]);
    // The request and the reply hold code, URLs and outputs: a few KB, never the state.
    expect(payloads.length).toBe(1);
    expect(Math.max(...payloads.map((p) => Math.max(p.request, p.reply)))).toBeLessThan(16 * 1024);

    const changed = await run(
      episodes,
      id,
      "big[0] = -1\nbig[1] = 1\nprint(int(big[0]), int(big[-1]) == last)",
    );
    expect(changed.observation.stdout).toBe("-1 True\n");
    const parent = (await repository.load(T, id, { nowMs: Date.now() }))?.episode;
    expect(parent?.stateObject?.key).not.toBe(stored?.stateObject?.key);

    const { episode_id: forkId } = await episodes.fork(T, id);
    const fork = (await repository.load(T, forkId, { nowMs: Date.now() }))?.episode;
    // Shared, not copied: the fork's version names the parent's object; nothing under its prefix.
    expect(fork?.stateObject).toEqual(parent?.stateObject);
    expect(await objects.listEpisode(T, forkId)).toEqual([]);
    const forkStep = await run(episodes, forkId, "big[1] = 7\nprint(int(big[0]), int(big[1]))");
    expect(forkStep.observation.stdout).toBe("-1 7\n");
    const parentStep = await run(episodes, id, "print(int(big[0]), int(big[1]))");
    expect(parentStep.observation.stdout).toBe("-1 1\n");
    const forkObjects = await objects.listEpisode(T, forkId);
    expect(forkObjects).toHaveLength(1);
    expect(payloads.every((p) => p.request < 16 * 1024 && p.reply < 16 * 1024)).toBe(true);

    // Delete the parent: its objects go, except the one its fork's history names (shared).
    await episodes.delete(T, id);
    expect(await objects.listEpisode(T, id)).toEqual([parent?.stateObject?.key]);
    const afterDelete = await run(episodes, forkId, "print(int(big[1]))");
    expect(afterDelete.observation.stdout).toBe("7\n");
    await episodes.delete(T, forkId);
    expect(await objects.listEpisode(T, forkId)).toEqual([]);
  });

  it("a state over the cap is 413 state_too_large, metered, nothing written, the previous state intact", async () => {
    const { episodes } = service(8 * MiB);
    const { episode_id: id } = await episodes.reset(T, { policy: "full" });
    await run(episodes, id, "import os\nkept = os.urandom(1024 * 1024)\nsize = len(kept)");
    const before = await objects.listEpisode(T, id);
    expect(before).toHaveLength(1);

    // Act
    const refused = episodes.step(T, id, { code: "big = os.urandom(10 * 1024 * 1024)", timeout_s: 60 });

    // Assert: the one error shape's code, no new object, the metering record, the state as before.
    await expect(refused).rejects.toMatchObject({ status: 413, code: "state_too_large" });
    expect(await objects.listEpisode(T, id)).toEqual(before);
    const executions = await table.doc.send(
      new QueryCommand({
        TableName: table.tableName,
        KeyConditionExpression: "pk = :pk AND begins_with(sk, :x)",
        ExpressionAttributeValues: { ":pk": episodePk(T, id), ":x": "X#" },
      }),
    );
    expect(executions.Items?.map((i) => i.reason)).toEqual(["state_too_large"]);
    const after = await run(episodes, id, "print(size, 'big' in globals())");
    expect(after.observation.stdout).toBe(`${MiB} False\n`);
    await episodes.delete(T, id);
  });

  it("an object older than the reuse window is copied to a fresh key before a new version names it again", async () => {
    const { repository, episodes } = service();
    const { episode_id: id } = await episodes.reset(T, { policy: "full" });
    await run(episodes, id, "import os\nblob = os.urandom(1024 * 1024)");
    const loaded = await repository.load(T, id, { nowMs: Date.now() });
    const before = loaded?.episode;
    if (!before?.stateObject) throw new Error("expected a state object");
    const firstRecord = await repository.getStep(before, 1);
    if (!firstRecord) throw new Error("expected step 1");
    const old = {
      ...before,
      stateObject: { ...before.stateObject, createdAtMs: Date.now() - REUSE_MAX_AGE_MS - 1 },
    };

    // Act: a version that keeps the state (as a step that changed nothing) of an old object.
    const committed = await repository.commitStep({
      before: old,
      snapshot: null,
      stateObject: old.stateObject,
      lastExitCode: 0,
      nowMs: Date.now(),
      record: { ...firstRecord, step: 2 },
      usage: { executorMs: 1, stateBytes: old.stateObject.bytes },
    });

    // Assert: a new key under the episode's prefix, same bytes; the next step restores from it.
    if (committed.kind !== "committed") throw new Error(committed.kind);
    const copied = committed.episode.stateObject;
    expect(copied?.key).not.toBe(before.stateObject.key);
    expect(objects.owns(T, id, copied?.key ?? "")).toBe(true);
    expect(
      Buffer.from(await objects.read(copied?.key ?? "")).equals(
        Buffer.from(await objects.read(before.stateObject.key)),
      ),
    ).toBe(true);
    const next = await run(episodes, id, "print(len(blob))");
    expect(next.observation.stdout).toBe("1048576\n");
    await episodes.delete(T, id);
  });

  it("a retried step is answered from its stored step and writes no second object", async () => {
    const { episodes } = service();
    const { episode_id: id } = await episodes.reset(T, { policy: "full" });
    const first = await run(
      episodes,
      id,
      "import os\nblob = os.urandom(2 * 1024 * 1024)\nprint(len(blob))",
      "req-1",
    );
    const keys = await objects.listEpisode(T, id);
    expect(keys).toHaveLength(1);

    const again = await episodes.step(T, id, { code: "blob = b''", request_id: "req-1" });

    expect(again.replayed).toBe(true);
    expect(again.body).toEqual(first);
    expect(await objects.listEpisode(T, id)).toEqual(keys);
    await episodes.delete(T, id);
  });

  it("uploaded files and reads work on a state in S3, and an unchanged state writes no object", async () => {
    const { repository, episodes } = service();
    const { episode_id: id } = await episodes.reset(T, { policy: "full" });
    await run(episodes, id, "import os\nblob = os.urandom(3 * 1024 * 1024)");
    const files = episodes.files();

    // Act
    const written = await files.write(T, id, "notes.txt", Buffer.from("hello"));
    const listed = await files.list(T, id);
    const read = await files.read(T, id, "notes.txt");
    const keysBefore = await objects.listEpisode(T, id);
    const cold = await run(episodes, id, "print(len(blob), open('notes.txt').read())");
    const keysAfterCold = await objects.listEpisode(T, id);
    // A warm step that changes nothing: the state pickles to the same bytes, so no object.
    const unchanged = await run(episodes, id, "print(len(blob))");

    // Assert
    expect(written.step_count).toBe(2);
    expect(listed.files).toEqual([{ path: "notes.txt", size: 5 }]);
    expect(Buffer.from(read).toString()).toBe("hello");
    expect(cold.observation.stdout).toBe(`${3 * MiB} hello\n`);
    expect(unchanged.observation.stdout).toBe(`${3 * MiB}\n`);
    expect(keysAfterCold.length).toBeGreaterThanOrEqual(keysBefore.length);
    const latest = (await repository.load(T, id, { nowMs: Date.now() }))?.episode;
    expect(latest?.version).toBe(4);
    // Version 4 names version 3's object, and none was written for it.
    expect(await objects.listEpisode(T, id)).toEqual(keysAfterCold);
    const third = (await repository.load(T, id, { nowMs: Date.now() }))?.episode;
    expect(keysAfterCold).toContain(third?.stateObject?.key);
    await episodes.delete(T, id);
  });
});
