import { afterEach, describe, expect, it } from "vitest";
import { CodingEnv, CodingEnvError, NotFoundError, StepResult } from "../src/index.js";
import { stackUrl } from "./helpers.js";

// Every method of CodingEnv against the real local stack (dynalite + Python executor + API).
const opened: CodingEnv[] = [];
function newEnv(): CodingEnv {
  const env = new CodingEnv({ baseUrl: stackUrl() });
  opened.push(env);
  return env;
}
afterEach(async () => {
  await Promise.all(opened.splice(0).map((env) => env.close().catch(() => undefined)));
});

describe("CodingEnv against the local stack", () => {
  it("reset starts an episode at step 0 and binds the client to it", async () => {
    // Prepare
    const env = newEnv();
    expect(env.episodeId).toBeUndefined();
    // Act
    const result = await env.reset({ seed: 7 });
    // Assess
    expect(result).toBeInstanceOf(StepResult);
    expect(result.observation).toEqual({ stdout: "", stderr: "", exit_code: 0 });
    expect(result.reward).toBe(0);
    expect(result.done).toBe(false);
    expect(result.step_count).toBe(0);
    expect(result.episode_id).toMatch(/^ep_/);
    expect(env.episodeId).toBe(result.episode_id);
  });

  it("step runs code (string or CodeAction) with OpenEnv's stdout and reward", async () => {
    const env = newEnv();
    await env.reset();

    const first = await env.step("1+1");
    const second = await env.step({ code: "print('a')\nx = 5 + 3\nx", metadata: { turn: 2 } });

    expect(first.observation).toEqual({ stdout: "2", stderr: "", exit_code: 0 });
    expect(first.reward).toBeCloseTo(0.1);
    expect(first.step_count).toBe(1);
    expect(first.info?.timed_out).toBe(false);
    expect(second.observation.stdout).toBe("a\n\n8");
    expect(second.step_count).toBe(2);
    expect(second.ok).toBe(true);
  });

  it("a failing cell is data (exit_code 1, traceback in stderr), never thrown", async () => {
    const env = newEnv();
    await env.reset();

    const result = await env.step("print('before')\n1/0");

    expect(result.observation.exit_code).toBe(1);
    expect(result.observation.stderr).toContain("ZeroDivisionError");
    expect(result.ok).toBe(false);
    expect((await env.state()).last_exit_code).toBe(1);
  });

  it("state reports the episode's step count, last exit code and options", async () => {
    const env = newEnv();
    await env.reset({ stepTimeoutS: 7, additionalImports: ["json"], seed: 3 });
    await env.step("y = 2");

    const state = await env.state();

    expect(state.episode_id).toBe(env.episodeId);
    expect(state.step_count).toBe(1);
    expect(state.last_exit_code).toBe(0);
    expect(state.step_timeout_s).toBe(7);
    expect(state.additional_imports).toEqual(["json"]);
    expect(state.seed).toBe(3);
    expect(Date.parse(state.expires_at ?? "")).toBeGreaterThan(Date.now());
  });

  it("reset with an explicit episodeId replaces that episode", async () => {
    const env = newEnv();
    const id = `ep_sdk_${Date.now()}`;
    await env.reset({ episodeId: id });
    await env.step("z = 1");

    const again = await env.reset({ episodeId: id });
    const lookup = await env.step("z");

    expect(again.episode_id).toBe(id);
    expect(again.step_count).toBe(0);
    expect(lookup.observation.exit_code).toBe(1);
    expect(lookup.observation.stderr).toContain("NameError");
  });

  it("fork copies state and history; the copies evolve independently", async () => {
    const env = newEnv();
    await env.reset();
    await env.step("x = 1");

    const branch = await env.fork();
    opened.push(branch);
    await branch.step("x = 2");
    const inSource = await env.step("x");
    const inBranch = await branch.step("x");

    expect(branch.episodeId).not.toBe(env.episodeId);
    expect(branch.forkResult?.forked_from).toBe(env.episodeId);
    expect(branch.forkResult?.step_count).toBe(1);
    expect((await branch.state()).forked_from).toBe(env.episodeId);
    expect(inSource.observation.stdout).toBe("1");
    expect(inBranch.observation.stdout).toBe("2");
    const branchHistory = await branch.history();
    expect(branchHistory.steps.map((s) => s.code)).toEqual(["x = 1", "x = 2", "x"]);
    const sourceHistory = await env.history();
    expect(sourceHistory.steps.map((s) => s.code)).toEqual(["x = 1", "x"]);
  });

  it("history lists every step oldest first with its request_id", async () => {
    const env = newEnv();
    await env.reset();
    await env.step("a = 1", { requestId: "req-history-1" });
    await env.step("a + 1");

    const history = await env.history();

    expect(history.episode_id).toBe(env.episodeId);
    expect(history.steps.map((s) => s.step)).toEqual([1, 2]);
    expect(history.steps[0]?.request_id).toBe("req-history-1");
    expect(history.steps[1]?.observation.stdout).toBe("2");
    expect(typeof history.steps[1]?.started_at).toBe("string");
  });

  it("close deletes the episode; later calls on the client throw client_closed", async () => {
    const env = newEnv();
    await env.reset();
    const id = env.episodeId as string;

    await env.close();
    await env.close(); // twice is fine

    await expect(new CodingEnv({ baseUrl: stackUrl(), episodeId: id }).state()).rejects.toBeInstanceOf(
      NotFoundError,
    );
    await expect(env.step("1")).rejects.toMatchObject({ code: "client_closed" });
  });

  it("close({ keep: true }) leaves the episode for another client to resume", async () => {
    const env = newEnv();
    await env.reset();
    await env.step("kept = 41");
    const id = env.episodeId as string;

    await env.close({ keep: true });
    const resumed = new CodingEnv({ baseUrl: stackUrl(), episodeId: id });
    opened.push(resumed);
    const result = await resumed.step("kept + 1");

    expect(result.observation.stdout).toBe("42");
  });

  it("await using deletes the episode when the block ends", async () => {
    let id: string | undefined;
    {
      await using env = new CodingEnv({ baseUrl: stackUrl() });
      await env.reset();
      id = env.episodeId;
    }
    await expect(new CodingEnv({ baseUrl: stackUrl(), episodeId: id }).state()).rejects.toBeInstanceOf(
      NotFoundError,
    );
  });

  it("step before reset throws episode_required without a request", async () => {
    let calls = 0;
    const env = new CodingEnv({
      baseUrl: stackUrl(),
      fetch: (input, init) => {
        calls++;
        return fetch(input, init);
      },
    });

    const error = await env.step("1").catch((err: unknown) => err);

    expect(error).toBeInstanceOf(CodingEnvError);
    expect(error).toMatchObject({ code: "episode_required" });
    expect(calls).toBe(0);
  });

  it("health answers without an episode", async () => {
    const health = await new CodingEnv({ baseUrl: stackUrl() }).health();
    expect(health.status).toBe("healthy");
  });

  it("takes its base URL from CODING_ENV_URL when none is given", () => {
    const previous = process.env.CODING_ENV_URL;
    process.env.CODING_ENV_URL = "http://example.test:9999/";
    try {
      expect(new CodingEnv().baseUrl).toBe("http://example.test:9999");
      delete process.env.CODING_ENV_URL;
      expect(new CodingEnv().baseUrl).toBe("http://localhost:8000");
    } finally {
      if (previous === undefined) delete process.env.CODING_ENV_URL;
      else process.env.CODING_ENV_URL = previous;
    }
  });

  it("rejects a base URL that is not http(s)", () => {
    expect(() => new CodingEnv({ baseUrl: "localhost:8000" })).toThrow(/http:\/\//);
  });
});
