// The local S3 checks SigV4 signatures as S3 does (functions/src/local/sigv4-check.ts): the stack's
// access key id alone (it is in every pre-signed URL) opens nothing, and a pre-signed URL whose
// path or query was changed, or that has expired, is refused. The SDK's own requests and URLs pass.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalS3, startLocalS3 } from "../../functions/src/local/s3-server.js";
import { createStateS3Client } from "../../functions/src/store/s3-state.js";

const credentials = {
  accessKeyId: randomBytes(16).toString("hex"),
  secretAccessKey: randomBytes(30).toString("base64url"),
};
const bucket = "state";
let dir: string;
let s3: LocalS3;
let client: S3Client;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "coding-env-s3-signature-"));
  s3 = await startLocalS3({ directory: dir, bucket, credentials });
  client = createStateS3Client({ region: "us-east-1", endpoint: s3.endpoint, credentials });
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: "t1/e1/v1", Body: "victim" }));
});

afterAll(async () => {
  client?.destroy();
  await s3?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const presignedGet = (key: string, expiresIn = 300) =>
  getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn });

describe("the local S3's signature check", () => {
  it("the SDK's signed requests and a pre-signed GET as issued are served", async () => {
    // Act
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    const got = await fetch(await presignedGet("t1/e1/v1"));
    // Assert
    expect(listed.Contents?.map((o) => o.Key)).toContain("t1/e1/v1");
    expect(got.status).toBe(200);
    expect(await got.text()).toBe("victim");
  });

  it("the right access key id with a wrong signature is refused, in a header or a query", async () => {
    // Prepare
    const stamp = new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d{3}/, "");
    const scope = `${credentials.accessKeyId}/${stamp.slice(0, 8)}/us-east-1/s3/aws4_request`;
    const valid = new URL(await presignedGet("t1/e1/v1"));
    valid.searchParams.set("X-Amz-Signature", "0".repeat(64));
    // Act
    const header = await fetch(`${s3.endpoint}/${bucket}?list-type=2`, {
      headers: {
        authorization: `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=host;x-amz-date, Signature=${"0".repeat(64)}`,
        "x-amz-date": stamp,
      },
    });
    const query = await fetch(valid);
    const unsigned = await fetch(`${s3.endpoint}/${bucket}/t1/e1/v1`);
    // Assert
    expect([header.status, query.status, unsigned.status]).toEqual([403, 403, 403]);
  });

  it("a pre-signed URL with its key, its query or its method changed is refused", async () => {
    // Prepare: a valid URL of another key (as if it had leaked)
    const decoy = await presignedGet("t2/e2/v1");
    // Act
    const otherKey = await fetch(decoy.replace("/t2/e2/v1?", "/t1/e1/v1?"));
    const listing = await fetch(decoy.replace("/t2/e2/v1?", "?list-type=2&"));
    const put = await fetch(decoy, { method: "PUT", body: "overwritten" });
    const asIssued = await fetch(decoy);
    // Assert
    expect([otherKey.status, listing.status, put.status]).toEqual([403, 403, 403]);
    expect(asIssued.status).toBe(404); // the URL itself is valid: its key does not exist
  });

  it("an expired pre-signed URL is refused", async () => {
    // Prepare: a URL issued 10 minutes ago, valid for 60 s
    const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: "t1/e1/v1" }), {
      expiresIn: 60,
      signingDate: new Date(Date.now() - 10 * 60 * 1000),
    });
    // Act
    const r = await fetch(url);
    // Assert
    expect(r.status).toBe(403);
  });
});
