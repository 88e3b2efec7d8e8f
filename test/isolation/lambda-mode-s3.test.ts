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
import { call, Episode, errorCode, type StepBody } from "../helpers/api.js";

/** The stacks' state cap in this file (CODING_ENV_MAX_STATE_BYTES): room for one 100 MiB array. */
const STATE_CAP = 160 * 1024 * 1024;

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

/** Both modes' stacks, started together when the first suite needs one (the file waits for one start). */
let starting: Map<ExecutorMode, Promise<LocalStack>> | undefined;
function stackFor(mode: ExecutorMode): Promise<LocalStack> {
  if (!starting) {
    starting = new Map();
    for (const m of isRoot ? (["local", "lambda"] as const) : (["local"] as const)) {
      const started = startLocalStack({
        port: 0,
        dataDir: null,
        executorMode: m,
        // Below S3's 256 MiB so that a state past the cap costs little here.
        env: { CODING_ENV_MAX_STATE_BYTES: String(STATE_CAP) },
      });
      started.catch(() => undefined); // the suite that awaits it reports a failure
      starting.set(m, started);
    }
  }
  return starting.get(mode) as Promise<LocalStack>;
}
// Each suite stops its own; this stops one whose suite did not run (a filtered run).
afterAll(async () => {
  for (const started of starting?.values() ?? []) await (await started.catch(() => undefined))?.stop();
});

describe.each<ExecutorMode>(["local", "lambda"])("another episode's state object, %s mode", (mode) => {
  let stack: LocalStack;
  let s3: S3Client;

  beforeAll(async () => {
    if (mode === "lambda" && !isRoot) return;
    stack = await stackFor(mode);
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

  // The large-state path in Lambda mode (the same suite runs in root mode in
  // test/store/large-state-path.test.ts): through the harness's S3 gateway stand-in. Defined for
  // Lambda mode only, so root mode lists no skipped copy of it.
  const inLambdaMode = mode === "lambda" ? it.skipIf(!isRoot) : undefined;
  inLambdaMode?.(
    "a 100 MiB numpy array goes through the local S3: a fork restores and diverges, past the cap is 413, delete keeps only the shared object",
    async () => {
      // Prepare
      const n = (100 * 1024 * 1024) / 8;
      const parent = await Episode.reset(stack.baseUrl, { policy: "full", step_timeout_s: 120 });
      const made = await parent.run(
        `import numpy as np\nbig = np.random.default_rng(5).integers(0, 2**62, ${n}, dtype=np.int64)\n` +
          "check = int(big[::4096].sum() % 1000003)\nprint(big.nbytes)",
      );
      const keysOf = async (id: string) =>
        ((await s3.send(new ListObjectsV2Command({ Bucket: stack.stateBucket }))).Contents ?? [])
          .map((o) => o.Key ?? "")
          .filter((k) => k.includes(id));
      // Act
      const forked = await call<StepBody>(stack.baseUrl, "POST", `/episodes/${parent.id}/fork`);
      const forkStep = await call<StepBody>(stack.baseUrl, "POST", "/step", {
        episode_id: forked.body.episode_id,
        action: {
          code: "ok = int(big[::4096].sum() % 1000003) == check\nbig[0] = -1\nprint(big.nbytes, ok, int(big[0]))",
        },
      });
      const overCap = await parent.step("big2 = big + 1");
      const parentAfter = await parent.run(
        "print(int(big[0]) != -1, 'big2' in globals(), int(big[::4096].sum() % 1000003) == check)",
      );
      const parentKeys = await keysOf(parent.id);
      const deleted = await call(stack.baseUrl, "DELETE", `/episodes/${parent.id}`);
      const keptForTheFork = await keysOf(parent.id);
      const forkAfterDelete = await call<StepBody>(stack.baseUrl, "POST", "/step", {
        episode_id: forked.body.episode_id,
        action: { code: "print(int(big[0]))" },
      });
      const deletedFork = await call(stack.baseUrl, "DELETE", `/episodes/${forked.body.episode_id}`);
      // Assert
      expect(made.observation).toEqual({ stdout: `${8 * n}\n`, stderr: "", exit_code: 0 });
      expect(parentKeys.length).toBeGreaterThanOrEqual(1);
      expect(forked.status).toBe(201);
      expect(forkStep.body.observation).toMatchObject({ stdout: `${8 * n} True -1\n`, exit_code: 0 });
      expect(overCap.status).toBe(413);
      expect(errorCode(overCap)).toBe("state_too_large");
      expect(parentAfter.observation.stdout).toBe("True False True\n");
      expect([deleted.status, deletedFork.status].every((s) => s < 300)).toBe(true);
      // The parent's objects go but the one its fork's history names (shared, not copied); what
      // the fork wrote goes with the fork (the shared one is left to the lifecycle rule).
      expect(keptForTheFork).toHaveLength(1);
      expect(forkAfterDelete.body.observation.stdout).toBe("-1\n");
      expect(await keysOf(forked.body.episode_id)).toEqual([]);
    },
  );
});
