// The API against the executor in Lambda mode: the local stack with `executorMode: "lambda"` runs
// the executor's real handler in emulated Lambda execution environments
// (python-runtime/harness/lambda_env.py: non-root uid without capabilities, read-only code, only
// /tmp writable, frozen between invocations, canary AWS credentials, Lambda's 6 MB limits).
// The ordinary flow and a few attacks, through the public API only.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { call, Episode, errorCode } from "../helpers/api.js";

/** The harness's canary credentials (python-runtime/harness/environment.py) share these marks. */
const CANARY_MARKS = ["ASIAHARNESSCANARY", "harness-canary"];
/** Environment uids of the harness start here; the root-mode runtime's worker uids are far below. */
const HARNESS_FIRST_UID = 1_500_000;

/** The stack's state cap in this file (CODING_ENV_MAX_STATE_BYTES). */
const STATE_CAP = 16 * 1024 * 1024;

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

describe.skipIf(!isRoot)("the API against the executor in Lambda mode", () => {
  let stack: LocalStack;
  let base: string;

  beforeAll(async () => {
    stack = await startLocalStack({
      port: 0,
      dataDir: null,
      executorMode: "lambda",
      // A lower cap than S3's 256 MiB, so the refusal past it costs little here.
      env: { CODING_ENV_MAX_STATE_BYTES: String(STATE_CAP) },
    });
    base = stack.baseUrl;
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it("reset, step and state work, and the code runs in a Lambda environment's uid", async () => {
    // The stack's executor is the harness (its first child process).
    const executor = readFileSync(`/proc/${stack.childPids[0]}/cmdline`, "utf8").replace(/\0/g, " ");
    expect(executor).toContain("lambda_env.py");
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    // Act
    await ep.run("x = 41");
    const next = await ep.run("x + 1");
    const who = await ep.run("import os\nos.getuid()");
    const state = await ep.state();
    // Assert
    expect(next.observation).toMatchObject({ stdout: "42", exit_code: 0 });
    expect(Number(who.observation.stdout)).toBeGreaterThanOrEqual(HARNESS_FIRST_UID);
    expect(state).toMatchObject({ step_count: 3, last_exit_code: 0 });
  });

  it("user code sees neither the canary AWS credentials nor the stack's start-up key", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    const probe = [
      "import os",
      "seen = [repr(dict(os.environ))]",
      "for pid in os.listdir('/proc'):",
      "    for name in ('environ', 'cmdline'):",
      "        try:",
      "            seen.append(open(f'/proc/{pid}/{name}', 'rb').read().decode('latin-1'))",
      "        except OSError:",
      "            pass",
      "print('\\n'.join(seen))",
    ].join("\n");
    // Act
    const out = await ep.run(probe);
    // Assert
    expect(out.observation.exit_code).toBe(0);
    const text = out.observation.stdout + out.observation.stderr;
    for (const mark of [...CANARY_MARKS, stack.credentials.accessKeyId]) expect(text).not.toContain(mark);
  });

  it("user code cannot reach the stack's DynamoDB, executor or API", async () => {
    // Prepare
    const ports = [stack.dynamodbEndpoint, stack.executorEndpoint, base].map((u) => Number(new URL(u).port));
    const ep = await Episode.reset(base, { policy: "full" });
    const probe = [
      "import socket",
      "out = []",
      `for port in ${JSON.stringify(ports)}:`,
      "    try:",
      "        socket.create_connection(('127.0.0.1', port), timeout=2).close()",
      "        out.append('connected')",
      "    except OSError as e:",
      "        out.append(type(e).__name__)",
      "out",
    ].join("\n");
    // Act
    const out = await ep.run(probe);
    // Assert
    expect(out.observation.exit_code).toBe(0);
    expect(JSON.parse(out.observation.stdout)).not.toContain("connected");
  });

  it("a megabyte of NUL characters is answered 200 with the output cut, never a 5xx", async () => {
    // Prepare
    const ep = await Episode.reset(base);
    // Act
    const r = await ep.step("print('\\x00' * 2**20)");
    // Assert
    expect(r.status).toBe(200);
    expect(r.body.observation.exit_code).toBe(0);
    expect(r.body.info?.stdout_truncated).toBe(true);
    expect(r.body.observation.stdout.length).toBeGreaterThan(0);
    expect(await ep.run("6 * 7")).toMatchObject({ observation: { stdout: "42" } });
  });

  it("an 8 MiB state (past Lambda's 6 MB payload) goes through the local S3 and is there in the next step", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    // Act
    const r = await ep.step(
      "import os, hashlib\nblob = os.urandom(8 * 2**20)\ndigest = hashlib.sha256(blob).hexdigest()",
    );
    const after = await ep.run("import hashlib\nlen(blob), hashlib.sha256(blob).hexdigest() == digest");
    // Assert
    expect(r.status).toBe(200);
    expect(r.body.observation.exit_code).toBe(0);
    expect(after.observation.stdout).toBe(`[${8 * 2 ** 20}, true]`);
  });

  it("a state over the cap is refused 413 state_too_large and the episode keeps its state", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    await ep.run("kept = 'before'");
    // Act
    const r = await ep.step(`import os\nblob = os.urandom(${STATE_CAP + 2 ** 20})`);
    const after = await ep.run("kept, 'blob' in globals()");
    // Assert
    expect(r.status).toBe(413);
    expect(errorCode(r)).toBe("state_too_large");
    expect(after.observation.stdout).toBe('["before", false]');
  });

  it("the code tree is read-only and only /tmp is writable", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    const probe = [
      "import errno, os, coding_env_runtime",
      "out = {}",
      "for path in [os.path.dirname(coding_env_runtime.__file__) + '/x.py', '/var/tmp/x', '/tmp/x']:",
      "    try:",
      "        open(path, 'w').write('x')",
      "        out[path[:8]] = 'written'",
      "    except OSError as e:",
      "        out[path[:8]] = errno.errorcode[e.errno]",
      "out['shm'] = os.path.exists('/dev/shm')",
      "out",
    ].join("\n");
    // Act
    const out = await ep.run(probe);
    // Assert
    const seen = JSON.parse(out.observation.stdout) as Record<string, string | boolean>;
    expect(Object.values(seen).filter((v) => v === "written")).toHaveLength(1); // /tmp only
    expect(seen["/var/tmp"]).toBe("EROFS");
    expect(seen.shm).toBe(false);
  });

  it("with every execution environment busy, a step is refused 429 executor_throttled and does not run", async () => {
    // Prepare: more concurrent steps than the harness has environments (4)
    const episodes = await Promise.all(Array.from({ length: 8 }, () => Episode.reset(base)));
    // Act
    const replies = await Promise.all(episodes.map((e) => e.step("import time\ntime.sleep(3)")));
    // Assert
    const statuses = replies.map((r) => r.status);
    expect(statuses).toContain(429);
    for (const [i, r] of replies.entries()) {
      if (r.status === 200) continue;
      expect(r.status).toBe(429);
      expect(errorCode(r)).toBe("executor_throttled");
      expect(r.headers.get("retry-after")).toBeTruthy();
      expect(await episodes[i]?.state()).toMatchObject({ step_count: 0 });
    }
  });

  // In Lambda mode user code shares the runtime's uid and can kill it; Lambda then reports
  // Runtime.ExitError, which the API answers as a crashed step (state unchanged), not a 5xx.
  it("user code that kills the runtime gets a crashed step, not a 5xx", async () => {
    // Prepare
    const ep = await Episode.reset(base, { policy: "full" });
    await ep.run("kept = 41");
    const killer = [
      "import os",
      "for pid in os.listdir('/proc'):",
      "    if pid.isdigit() and int(pid) > 1:",
      "        try:",
      "            os.kill(int(pid), 9)",
      "        except OSError:",
      "            pass",
    ].join("\n");
    // Act
    const r = await ep.step(killer);
    const after = await ep.run("kept + 1");
    // Assert
    expect(r.status).toBe(200);
    expect(r.body.observation.exit_code).toBe(1);
    expect(r.body.info).toMatchObject({ crashed: true, error_code: "crashed" });
    expect(r.body.step_count).toBe(2);
    expect(after.observation.stdout).toBe("42");
  });

  it("deleting an episode answers at once; its id then is unknown", async () => {
    // Prepare
    const ep = await Episode.reset(base);
    await ep.run("x = 1");
    // Act
    const deleted = await call(base, "DELETE", `/episodes/${ep.id}`);
    const after = await call(base, "GET", `/episodes/${ep.id}`);
    // Assert
    expect(deleted.status).toBeLessThan(300);
    expect(after.status).toBe(404);
  });
});
