// Large state through the local S3 (a real S3-protocol server) and the real executor: a 16 MiB
// numpy array is written by the executor to a pre-signed PUT URL, survives a restart of the
// executor (read back from a pre-signed GET URL by a fresh one), a fork shares the object instead
// of copying it, and deleting the episode deletes its objects. The local S3 refuses requests not
// signed with the stack's start-up credentials.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda";
import { GetObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StateObjectRef } from "../../functions/src/core/episode-repository.js";
import {
  type ExecutorProcess,
  startExecutor,
  stopExecutor,
} from "../../functions/src/local/executor-process.js";
import { type LocalS3, startLocalS3 } from "../../functions/src/local/s3-server.js";
import { createStateS3Client, S3StateStore } from "../../functions/src/store/s3-state.js";

const repoRoot = resolve(import.meta.dirname, "../..");
const credentials = {
  accessKeyId: randomBytes(16).toString("hex"),
  secretAccessKey: randomBytes(30).toString("base64url"),
};
const BUCKET = "coding-env-state";
const MiB = 1024 * 1024;
/**
 * The array's size: past Lambda's 6 MB payload and several of the runtime's transfer chunks, so the
 * state can only go through the URLs. A 100 MiB one across a whole stack's restart is restart.test.ts's.
 */
const STATE_MIB = 16;
/** The array's size, last value and sum (mod a prime): the same after the restart means the same array. */
const CHECKSUM = "print(big.nbytes, int(big[-1]), int(big.sum() % 1000003))";

let dir: string;
let s3: LocalS3;
let client: S3Client;
let store: S3StateStore;
let executor: ExecutorProcess;

function lambdaFor(endpoint: string): LambdaClient {
  return new LambdaClient({ region: "us-east-1", endpoint, credentials, maxAttempts: 1 });
}

async function invoke(event: Record<string, unknown>): Promise<Record<string, unknown>> {
  const out = await lambdaFor(executor.endpoint).send(
    new InvokeCommand({ FunctionName: "coding-env-executor", Payload: Buffer.from(JSON.stringify(event)) }),
  );
  const text = Buffer.from(out.Payload ?? new Uint8Array()).toString("utf8");
  if (out.FunctionError) throw new Error(`executor error: ${text.slice(0, 500)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

async function step(episodeId: string, version: number, code: string, input: StateObjectRef | null) {
  const state = await store.stateUrls({
    tenantId: "t1",
    episodeId,
    incarnation: "i1",
    version: version + 1,
    input,
    inlineMaxBytes: 32 * 1024,
    maxBytes: 256 * MiB + 4096,
  });
  const reply = await invoke({
    contract_version: 1,
    tenant_id: "t1",
    episode_id: episodeId,
    incarnation: "i1",
    state_version: version,
    code,
    policy: { mode: "full" },
    limits: { timeout_ms: 60_000, memory_mb: 1024 },
    state,
  });
  const ref: StateObjectRef = {
    key: state.put_ref,
    bytes: Number(reply.state_bytes),
    sha256: String(reply.state_sha256),
    createdAtMs: Date.now(),
  };
  return { reply, putKey: state.put_ref, ref };
}

const start = () =>
  startExecutor({
    repoRoot,
    mode: "local",
    log: false,
    maxWarmWorkers: 4,
    accessKeyId: credentials.accessKeyId,
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coding-env-s3-"));
  s3 = await startLocalS3({ directory: dir, bucket: BUCKET, credentials });
  client = createStateS3Client({ region: "us-east-1", endpoint: s3.endpoint, credentials });
  store = new S3StateStore({ client, bucket: BUCKET });
  executor = await start();
});

afterAll(async () => {
  if (executor) await stopExecutor(executor);
  await s3?.close();
  client?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("large state in the local S3", () => {
  it("refuses requests not signed with the stack's credentials", async () => {
    const other = new S3Client({
      region: "us-east-1",
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
    });
    await expect(other.send(new GetObjectCommand({ Bucket: BUCKET, Key: "x" }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 403 },
    });
    const anonymous = await fetch(`${s3.endpoint}/${BUCKET}/x`);
    expect(anonymous.status).toBe(403);
    other.destroy();
  });

  it("signs object URLs exactly as the SDK's getSignedUrl does (path-style local, virtual-hosted with a session token)", async () => {
    const at = new Date("2026-12-02T04:00:00Z");
    // A key with a character SigV4 encodes (a tenant's "%40") and one without; two days (the
    // signing key and credential scope are kept per day).
    const keys = [
      "state/t%40x/ep_1/0001a2b3c4d5e6f7/0000000001-0123456789abcdef",
      "state/t/ep_1/-/0000000002-ab",
    ];
    const days = [at, new Date("2026-12-03T00:00:01Z")];
    const cases = [
      { client, bucket: BUCKET },
      {
        client: createStateS3Client({
          region: "eu-west-1",
          credentials: { accessKeyId: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN/+=" } as never,
        }),
        bucket: "coding-env-state-1",
      },
    ];
    for (const { client: c, bucket } of cases) {
      const ours = new S3StateStore({ client: c, bucket });
      for (const date of days) {
        for (const key of keys) {
          const sdkGet = await getSignedUrl(c, new GetObjectCommand({ Bucket: bucket, Key: key }), {
            expiresIn: 900,
            signingDate: date,
          });
          const sdkPut = await getSignedUrl(c, new PutObjectCommand({ Bucket: bucket, Key: key }), {
            expiresIn: 900,
            signingDate: date,
          });
          expect(await ours.presignGet(key, date)).toBe(sdkGet);
          expect(await ours.presignPut(key, date)).toBe(sdkPut);
        }
      }
    }
  });

  it("pre-signed PUTs carry no checksum; one with the SDK's default (CRC32 of an empty body) is refused as S3 refuses it", async () => {
    const key = "state/t1/checksums/object";
    const ours = await store.presignPut(key);
    expect(new URL(ours).searchParams.has("x-amz-checksum-crc32")).toBe(false);
    expect((await fetch(ours, { method: "PUT", body: "state bytes" })).status).toBe(200);
    // The SDK's default client signs the CRC32 of the (empty) body into the URL.
    const defaults = new S3Client({
      region: "us-east-1",
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentials,
    });
    const theirs = await getSignedUrl(defaults, new PutObjectCommand({ Bucket: BUCKET, Key: key }), {
      expiresIn: 60,
    });
    defaults.destroy();
    expect(new URL(theirs).searchParams.get("x-amz-checksum-crc32")).toBe("AAAAAA==");
    const refused = await fetch(theirs, { method: "PUT", body: "state bytes" });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("BadDigest");
    expect(Buffer.from(await store.read(key)).toString()).toBe("state bytes");
  });

  it("a 16 MiB numpy array survives an executor restart, a fork shares its object, delete removes it", async () => {
    // Act: the executor writes the state to the PUT URL (the reply carries none of it).
    const first = await step(
      "ep_big",
      0,
      // Random integers: incompressible, so the stored state stays past the payload and the chunks.
      `import numpy as np\nbig = np.random.default_rng(5).integers(0, 2**62, ${STATE_MIB} * 1024 * 1024 // 8, dtype=np.int64)\n${CHECKSUM}`,
      null,
    );
    expect(first.reply.stderr).toBe("");
    expect(first.reply.stdout).toMatch(new RegExp(`^${STATE_MIB * MiB} \\d+ \\d+\n$`));
    expect(first.reply.state_location).toBe("put");
    expect(first.reply.snapshot).toBe("");
    // Stored as it was made: past Lambda's 6 MB payload and one of the runtime's 8 MiB transfer chunks.
    expect((await store.read(first.putKey)).byteLength).toBeGreaterThan(8 * MiB);
    // Restart the executor: no warm worker, no cached copy; the state comes from S3.
    await stopExecutor(executor);
    executor = await start();
    const second = await step("ep_big", 1, CHECKSUM, first.ref);
    expect(second.reply.stderr).toBe("");
    expect(second.reply.stdout).toBe(first.reply.stdout);
    expect(second.reply.warm).toBe(false);
    // A fork names its parent's object (shared: nothing is copied under the fork) and its first
    // step reads it; the new state that step makes is the fork's own object.
    expect(await store.listEpisode("t1", "ep_big_fork")).toEqual([]);
    const forked = await step("ep_big_fork", 1, "big = big[:10]\nprint(big.nbytes)", first.ref);
    expect(forked.reply.stdout).toBe("80\n");
    expect(forked.reply.state_location).toBe("inline");
    expect(await store.listEpisode("t1", "ep_big_fork")).toEqual([]);
    expect(store.owns("t1", "ep_big", first.putKey)).toBe(true);
    // Delete: the episode's objects go.
    const before = await store.listEpisode("t1", "ep_big");
    expect(before).toContain(first.putKey);
    expect(await store.deleteEpisode("t1", "ep_big")).toBe(before.length);
    expect(await store.listEpisode("t1", "ep_big")).toEqual([]);
    await expect(store.read(first.putKey)).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });
});
