// Large state in S3 against hostile user code, in both executor modes, through the public API.
// In Lambda mode the harness relays the local S3's address into each environment (its stand-in for
// the VPC's S3 gateway endpoint, python-runtime/harness/env_init.py), so user code reaches the
// local S3 as a Lambda reaches S3; what protects another episode's object is then S3's own rule: a
// request must carry a valid signature of the stack's secret (functions/src/local/sigv4-check.ts).
// In root mode the worker has no route to the host at all (its own network namespace).
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExecutorMode } from "../../functions/src/local/executor-process.js";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { createStateS3Client } from "../../functions/src/store/s3-state.js";
import { Episode } from "../helpers/api.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** User code's attempts, each answered by its HTTP status or its error's name. */
const PROBE = `
import datetime, json, urllib.error, urllib.request
a = json.loads(ATTEMPTS)
now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
forged = {
    'Authorization': 'AWS4-HMAC-SHA256 Credential=' + a['key_id'] + '/' + now[:8]
    + '/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=' + '0' * 64,
    'x-amz-date': now,
    'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
}
out = {}
for name, url, headers in [
    ('unsigned_get', a['object'], {}),
    ('unsigned_list', a['list'], {}),
    ('forged_list', a['list'], forged),
    ('forged_get', a['object'], forged),
    ('tampered_url', a['tampered'], {}),
    ('own_url', a['decoy'], {}),
]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            out[name] = r.status
    except urllib.error.HTTPError as e:
        out[name] = e.code
    except Exception as e:
        out[name] = type(e.reason if isinstance(e, urllib.error.URLError) else e).__name__
print(json.dumps(out))
`;

describe.each<ExecutorMode>(["local", "lambda"])("another episode's state object, %s mode", (mode) => {
  let stack: LocalStack;
  let s3: S3Client;

  beforeAll(async () => {
    if (mode === "lambda" && !isRoot) return;
    stack = await startLocalStack({ port: 0, dataDir: null, executorMode: mode });
    s3 = createStateS3Client({
      region: "us-east-1",
      endpoint: stack.s3Endpoint,
      credentials: stack.credentials,
    });
  });

  afterAll(async () => {
    s3?.destroy();
    await stack?.stop();
  });

  it.skipIf(mode === "lambda" && !isRoot)(
    "user code can neither list the bucket nor read the object, with no key, a leaked key id or a tampered pre-signed URL",
    async () => {
      // Prepare: a victim episode whose state is an object in S3, and what an attacker could know
      const victim = await Episode.reset(stack.baseUrl, { policy: "full" });
      await victim.run("import os\nsecret = os.urandom(1 << 20)\nmark = 'victim-state'");
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: stack.stateBucket }));
      const key = listed.Contents?.map((o) => o.Key).find((k) => k?.includes(victim.id));
      expect(key).toBeDefined();
      const base = `${stack.s3Endpoint}/${stack.stateBucket}`;
      // A valid pre-signed GET of another key (as if it had leaked to user code), and the same URL
      // with its path changed to the victim's object.
      const decoy = await getSignedUrl(
        s3,
        new GetObjectCommand({ Bucket: stack.stateBucket, Key: "decoy" }),
        {
          expiresIn: 300,
        },
      );
      const tampered = decoy.replace(`/${stack.stateBucket}/decoy?`, `/${stack.stateBucket}/${key}?`);
      const attempts = {
        key_id: stack.credentials.accessKeyId,
        object: `${base}/${key}`,
        list: `${base}?list-type=2`,
        tampered,
        decoy,
      };
      const attacker = await Episode.reset(stack.baseUrl, { policy: "full" });
      // Act
      const out = await attacker.run(`ATTEMPTS = ${JSON.stringify(JSON.stringify(attempts))}\n${PROBE}`);
      const after = await victim.run("mark, len(secret)");
      // Assert
      expect(out.observation.exit_code).toBe(0);
      const seen = JSON.parse(out.observation.stdout) as Record<string, number | string>;
      const attacks = ["unsigned_get", "unsigned_list", "forged_list", "forged_get", "tampered_url"];
      if (mode === "lambda") {
        // The relay reaches the local S3 (a valid URL of a missing key is 404), which refuses the rest.
        expect(seen.own_url).toBe(404);
        for (const name of attacks) expect(seen[name], name).toBe(403);
      } else {
        // The worker has no route to the host: every request fails before any HTTP answer.
        for (const name of [...attacks, "own_url"]) expect(typeof seen[name], name).toBe("string");
      }
      expect(out.observation.stdout).not.toContain("victim-state");
      expect(after.observation.stdout).toBe('["victim-state", 1048576]');
    },
  );
});
