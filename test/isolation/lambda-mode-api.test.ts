// The essential API cases of the hostile suite against the executor in Lambda mode (issue 10, Tests:
// "in both executor modes"): the local stack with the Lambda-mode harness (a non-root uid per
// execution environment, frozen between invocations; python-runtime/harness/) behind two API
// instances with keys on, as in AWS. Concurrency of one episode (the step claim) is
// lambda-mode-concurrency.test.ts's; the harness's own limits are lambda-mode.test.ts's.
import { readdirSync, readFileSync } from "node:fs";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { type ApiReply, call, errorCode, type StepBody } from "../helpers/api.js";
import { clientFor } from "../tenancy/helpers/dynalite-table.js";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** A tenant's steps admitted at once, all instances: a flooder holds at most 2 of the 3 environments. */
const TENANT_RUNNING_STEPS = 2;

interface Totals {
  steps: number;
  executions: number;
}

describe.skipIf(!isRoot)(
  "the API's isolation cases against the executor in Lambda mode (2 API instances)",
  () => {
    let stack: LocalStack;
    let ddb: DynamoDBClient;
    let keyA: string;
    let keyB: string;

    beforeAll(async () => {
      stack = await startLocalStack({
        port: 0,
        dataDir: null,
        auth: true,
        executorMode: "lambda",
        apiInstances: 2,
        streamIntervalMs: 100,
        // Three execution environments: a tenant held to 2 steps at once leaves one for another.
        executorReservedConcurrency: 3,
        env: {
          CODING_ENV_TENANT_MAX_RUNNING_STEPS: String(TENANT_RUNNING_STEPS),
          // The cap as configured, not lowered further by this machine's load.
          CODING_ENV_ADMISSION_GOVERNOR: "off",
        },
      });
      ddb = clientFor(stack.dynamodbEndpoint, stack.credentials);
      const keys = dynamoDbApiKeyStore({ client: ddb, tableName: stack.tableName });
      keyA = (await keys.create({ tenantId: `lambda-api-a-${process.pid}` })).key;
      keyB = (await keys.create({ tenantId: `lambda-api-b-${process.pid}` })).key;
    });

    afterAll(async () => {
      ddb?.destroy();
      await stack?.stop();
    });

    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const reset = async (key: string, body: Record<string, unknown> = {}): Promise<string> => {
      const r = await call<StepBody>(stack.baseUrl, "POST", "/reset", { policy: "full", ...body }, as(key));
      expect(r.status, r.text).toBe(200);
      return r.body.episode_id;
    };
    const step = (key: string, episodeId: string, code: string, extra: Record<string, unknown> = {}) =>
      call<StepBody>(
        stack.baseUrl,
        "POST",
        "/step",
        { episode_id: episodeId, action: { code }, ...extra },
        as(key),
      );
    const stdout = async (reply: Promise<ApiReply<StepBody>>): Promise<string> => {
      const r = await reply;
      expect(r.status, r.text).toBe(200);
      return r.body.observation.stdout;
    };

    async function usage(key: string): Promise<Totals> {
      const today = new Date().toISOString().slice(0, 10);
      return (
        await call<{ totals: Totals }>(
          stack.baseUrl,
          "GET",
          `/usage?from=${today}&to=${today}`,
          undefined,
          as(key),
        )
      ).body.totals;
    }

    /** The usage once the roll-up has counted at least `executions` executions and nothing more arrives. */
    async function usageSettledAt(key: string, executions: number): Promise<Totals> {
      let last = await usage(key);
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const now = await usage(key);
        if (now.executions >= executions && now.executions === last.executions && now.steps === last.steps)
          return now;
        last = now;
      }
      return last;
    }

    it("a cell error and SystemExit(2**60) are answered 200, never a 5xx, and both executions are metered", async () => {
      // Prepare
      const ep = await reset(keyA);
      const before = await usageSettledAt(keyA, 0);
      // Act
      const error = await step(keyA, ep, "1 / 0");
      const exit = await step(keyA, ep, "raise SystemExit(2**60)");
      const after = await usageSettledAt(keyA, before.executions + 2);
      // Assert
      expect(error.status).toBe(200);
      expect(error.body.observation.exit_code).toBe(1);
      expect(error.body.observation.stderr).toContain("ZeroDivisionError");
      expect(exit.status).toBe(200);
      expect(exit.body.observation.exit_code).toBeGreaterThanOrEqual(1);
      expect(exit.body.observation.exit_code).toBeLessThanOrEqual(255);
      expect(after.executions - before.executions).toBe(2);
      expect(after.steps - before.steps).toBe(2);
    });

    it("a timed-out step keeps the state it started from", async () => {
      // Prepare
      const ep = await reset(keyA);
      await stdout(step(keyA, ep, "x = 1"));
      // Act
      const late = await step(keyA, ep, "x = 2\nwhile True:\n    pass", { timeout_s: 1 });
      const after = await stdout(step(keyA, ep, "x"));
      // Assert
      expect(late.status).toBe(200);
      expect(late.body.info?.timed_out).toBe(true);
      expect(after).toBe("1");
    });

    it("a flood of one tenant's steps fails none of another tenant's steps", async () => {
      // Prepare: tenant B's episode, and tenant A's flood on episodes of its own (more sleeping steps
      // than the harness has environments: without a per-tenant bound they would take them all)
      const mine = await reset(keyB);
      const flooded = await Promise.all(Array.from({ length: 6 }, () => reset(keyA)));
      // Act
      const flood = Promise.all(flooded.map((ep) => step(keyA, ep, "import time\ntime.sleep(1)")));
      const outcomes: ApiReply<StepBody>[] = [];
      for (let i = 0; i < 3; i++) outcomes.push(await step(keyB, mine, `${i} + 40`));
      const floodReplies = await flood;
      // Assert: B's steps all ran; A's were run or refused "retry later", never a 5xx
      expect(outcomes.map((r) => [r.status, r.body.observation?.stdout])).toEqual([
        [200, "40"],
        [200, "41"],
        [200, "42"],
      ]);
      for (const r of floodReplies) {
        if (r.status === 200) continue;
        expect(r.status, r.text).toBe(429);
        expect(["too_many_concurrent_steps", "executor_throttled"]).toContain(errorCode(r));
      }
    });

    // A module-level marker lives in the warm worker only (a restore re-imports modules); the
    // worker's uid and pid (in its environment's pid namespace) find its process on the host.
    const MARK = "import json, os\njson.marker = 'warm'\nprint(os.getuid(), os.getpid())";
    const MARKED = "import json\ngetattr(json, 'marker', 'cold')";

    /** The host pid of the process of `uid` whose pid in its own namespace is `innerPid`. */
    function hostPid(uid: number, innerPid: number): number | undefined {
      for (const name of readdirSync("/proc")) {
        if (!/^\d+$/.test(name)) continue;
        try {
          const status = readFileSync(`/proc/${name}/status`, "utf8");
          const real = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
          const nsPids = /^NSpid:\s+(.+)$/m.exec(status)?.[1]?.trim().split(/\s+/);
          if (real === uid && Number(nsPids?.at(-1)) === innerPid && (nsPids?.length ?? 0) > 1)
            return Number(name);
        } catch {
          /* gone meanwhile */
        }
      }
      return undefined;
    }

    /** Marks the episode's warm worker and returns its host pid. */
    async function markedWorker(key: string, ep: string): Promise<number> {
      const [uid, inner] = (await stdout(step(key, ep, MARK))).trim().split(" ").map(Number);
      const pid = hostPid(Number(uid), Number(inner));
      if (pid === undefined) throw new Error(`no host process for uid ${uid} pid ${inner}`);
      return pid;
    }

    /**
     * The process's state letter (R, S, T when stopped, Z once killed but not reaped), "killed"
     * while a SIGKILL is pending (it runs no user code again: an environment the harness froze
     * right after the discard holds it in D until its next invocation), or "gone".
     */
    function state(pid: number): string {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const letter = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] ?? "gone";
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const pending = (name: string) =>
          BigInt(`0x${new RegExp(`^${name}:\\s+([0-9a-f]+)`, "m").exec(status)?.[1] ?? "0"}`);
        const sigkill = 1n << 8n;
        return (pending("ShdPnd") | pending("SigPnd")) & sigkill ? "killed" : letter;
      } catch {
        return "gone";
      }
    }

    const waitGone = (pid: number) =>
      vi.waitFor(() => expect(["gone", "Z", "killed"]).toContain(state(pid)), {
        timeout: 15_000,
        interval: 50,
      });

    it("reset of an episode discards its warm worker: its process is gone and the next step is cold", async () => {
      // Prepare
      const ep = await reset(keyA);
      const worker = await markedWorker(keyA, ep);
      const warm = await stdout(step(keyA, ep, MARKED));
      // Act
      await reset(keyA, { episode_id: ep });
      // Assert
      await waitGone(worker);
      expect(warm).toBe('"warm"');
      expect(await stdout(step(keyA, ep, MARKED))).toBe('"cold"');
    });

    it("delete discards the warm worker: its process is gone and the same id reset again starts cold", async () => {
      // Prepare
      const ep = await reset(keyA);
      const worker = await markedWorker(keyA, ep);
      // Act
      const deleted = await call(stack.baseUrl, "DELETE", `/episodes/${ep}`, undefined, as(keyA));
      // Assert
      expect(deleted.status).toBeLessThan(300);
      await waitGone(worker);
      expect((await step(keyA, ep, MARKED)).status).toBe(404);
      await reset(keyA, { episode_id: ep });
      expect(await stdout(step(keyA, ep, MARKED))).toBe('"cold"');
    });

    it("a fork carries the state; the two episodes then diverge", async () => {
      // Prepare
      const src = await reset(keyA);
      await stdout(step(keyA, src, "items = [1]"));
      // Act
      const forked = await call<StepBody>(
        stack.baseUrl,
        "POST",
        `/episodes/${src}/fork`,
        undefined,
        as(keyA),
      );
      const copy = forked.body.episode_id;
      await stdout(step(keyA, copy, "items.append('fork')"));
      await stdout(step(keyA, src, "items.append('source')"));
      // Assert
      expect(forked.status).toBe(201);
      expect(await stdout(step(keyA, src, "items"))).toBe('[1, "source"]');
      expect(await stdout(step(keyA, copy, "items"))).toBe('[1, "fork"]');
      expect((await call(stack.baseUrl, "GET", `/episodes/${copy}`, undefined, as(keyB))).status).toBe(404);
    });
  },
);
