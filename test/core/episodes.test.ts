// The core's branches, fast: EpisodeService over an in-memory fake of its repository port and a
// scripted executor. Two services over one repository are two API instances. The same paths run
// against the real local stack in test/api/ and against dynalite in test/store/.
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import { EpisodeService, type EpisodeTenancyHooks } from "../../functions/src/core/episodes.js";
import { ApiError, ExecutorCrashedError, ExecutorTimeoutError } from "../../functions/src/core/errors.js";
import { failure } from "./api-failure.js";
import { FakeEpisodeRepository } from "./fake-episode-repository.js";
import { gate, ScriptedExecutor } from "./scripted-executor.js";

const T = "tenant-a";

function instance(
  repository: FakeEpisodeRepository,
  executor = new ScriptedExecutor(),
  tenancy?: EpisodeTenancyHooks,
) {
  const service = new EpisodeService({
    repository,
    executor,
    config: { ...defaultConfig, maxStateBytes: 1000 },
    ...(tenancy ? { tenancy } : {}),
    sleep: () => new Promise((r) => setImmediate(r)),
    logError: () => {},
  });
  return { service, executor };
}

async function stored(repo: FakeEpisodeRepository, id: string) {
  const got = await repo.load(T, id, { nowMs: Date.now() });
  if (!got) throw new Error("no episode");
  return got.episode;
}

describe("exactly once on several API instances", () => {
  it("steps alternating between two instances run each cell once, on the stored state", async () => {
    // Prepare: two instances over one store (each with its own executor client)
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    // Act: a, b, a, b ... without request ids (what OpenEnv clients send)
    for (let i = 0; i < 6; i++) await (i % 2 === 0 ? a : b).service.step(T, id, { code: `c${i}` });
    // Assess: 6 executor calls in all, each on the state the previous step stored
    expect(a.executor.calls.length + b.executor.calls.length).toBe(6);
    const ep = await stored(repo, id);
    expect(ep.version).toBe(6);
    expect(ScriptedExecutor.cells(ep.snapshot)).toEqual(["c0", "c1", "c2", "c3", "c4", "c5"]);
    expect(repo.executions).toEqual([]);
  });

  it("a commit race lost to another instance (A's claim lapsed while it ran) is a 409 conflict, its execution metered, never re-run", async () => {
    // Prepare: instance A's step is held in the executor past its claim's deadline, until B has committed
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const held = gate();
    const started = gate();
    a.executor.answer = async () => {
      started.open();
      await held.wait;
      return { duration_ms: 7 };
    };
    // Act
    const slow = a.service.step(T, id, { code: "from_a" });
    await started.wait;
    repo.expireClaims();
    await b.service.step(T, id, { code: "from_b" });
    held.open();
    const err = await failure(slow);
    // Assess
    expect(err.status).toBe(409);
    expect(err.code).toBe("conflict");
    expect(err.headers?.["Retry-After"]).toBe("1");
    expect(a.executor.calls).toHaveLength(1);
    expect(ScriptedExecutor.cells((await stored(repo, id)).snapshot)).toEqual(["from_b"]);
    expect(repo.executions).toMatchObject([
      { tenantId: T, episodeId: id, executorMs: 7, reason: "conflict" },
    ]);
  });

  it("a twin of one request_id on another instance does not run: 409 saying so, then the committed twin's response", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const held = gate();
    const started = gate();
    a.executor.answer = async () => {
      started.open();
      await held.wait;
      return { stdout: "a's output\n" };
    };
    const slow = a.service.step(T, id, { code: "n += 1", request_id: "r1" });
    await started.wait;
    const refused = await failure(b.service.step(T, id, { code: "n += 1", request_id: "r1" }));
    held.open();
    const fromA = await slow;
    const fromB = await b.service.step(T, id, { code: "n += 1", request_id: "r1" });
    expect(refused.code).toBe("step_in_progress");
    expect(refused.details).toMatchObject({ same_request: true });
    expect(refused.headers?.["Retry-After"]).toBe("1");
    expect(fromB).toEqual({ body: fromA.body, replayed: true });
    expect(b.executor.calls).toHaveLength(0);
    expect((await stored(repo, id)).version).toBe(1);
    expect(repo.executions).toEqual([]);
  });

  it("a retry of a recent request_id replays from the store on any instance without running", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const first = await a.service.step(T, id, { code: "x = 1", request_id: "r1" });
    await a.service.step(T, id, { code: "x = 2" });
    await a.service.step(T, id, { code: "x = 3", request_id: "r3" });
    const retry = await b.service.step(T, id, { code: "x = 1", request_id: "r1" });
    expect(retry).toEqual({ body: first.body, replayed: true });
    expect(b.executor.calls).toHaveLength(0);
    expect((await stored(repo, id)).version).toBe(3);
  });
});

describe("one step at a time per episode", () => {
  it("a second step while one runs in this instance: 409 step_in_progress, before the executor", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const held = gate();
    a.executor.answer = () => held.wait.then(() => ({}));
    const first = a.service.step(T, id, { code: "slow" });
    const err = await failure(a.service.step(T, id, { code: "second" }));
    held.open();
    await first;
    expect(err.status).toBe(409);
    expect(err.code).toBe("step_in_progress");
    expect(a.executor.calls.map((c) => c.code)).toEqual(["slow"]);
    expect(repo.executions).toEqual([]);
  });

  it("a duplicate of the running request_id in this instance waits and gets the same answer", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const held = gate();
    a.executor.answer = () => held.wait.then(() => ({}));
    const first = a.service.step(T, id, { code: "once", request_id: "r" });
    const twin = a.service.step(T, id, { code: "once", request_id: "r" });
    held.open();
    const [x, y] = await Promise.all([first, twin]);
    expect(y).toEqual({ body: x.body, replayed: true });
    expect(a.executor.calls).toHaveLength(1);
  });

  it("executor says busy: 409 step_in_progress, not metered; with a request_id it waits for its twin", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    a.executor.answer = () => ({ error_code: "busy", exit_code: 1, duration_ms: 0 });
    const err = await failure(a.service.step(T, id, { code: "x" }));
    expect(err.code).toBe("step_in_progress");
    expect(repo.executions).toEqual([]);
    // With a request id: its twin (on instance B) commits while A waits.
    let rereads = 0;
    const waiting = a.service.step(T, id, { code: "y", request_id: "twin" });
    const origLoad = repo.load.bind(repo);
    repo.load = async (...args) => {
      if (++rereads === 2) await b.service.step(T, id, { code: "y", request_id: "twin" });
      return origLoad(...args);
    };
    const answered = await waiting;
    expect(answered.replayed).toBe(true);
    expect(answered.body.step_count).toBe(1);
  });
});

describe("every execution is metered; nothing a cell does is a 500", () => {
  it("a state over the limit: 413 after metering, the episode unchanged", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    await a.service.step(T, id, { code: "small" });
    a.executor.answer = () => ({ snapshot: Buffer.alloc(2000).toString("base64"), duration_ms: 11 });
    const err = await failure(a.service.step(T, id, { code: "big" }));
    expect(err.status).toBe(413);
    expect(err.code).toBe("state_too_large");
    a.executor.answer = () => ({ error_code: "state_too_large", duration_ms: 12, snapshot_bytes: 9000 });
    expect((await failure(a.service.step(T, id, { code: "huge" }))).status).toBe(413);
    expect(repo.executions.map((e) => [e.reason, e.executorMs])).toEqual([
      ["state_too_large", 11],
      ["state_too_large", 12],
    ]);
    expect((await stored(repo, id)).version).toBe(1);
  });

  it("a tenancy state quota refuses after metering too", async () => {
    const repo = new FakeEpisodeRepository();
    const quota: EpisodeTenancyHooks = {
      reserveEpisodeSlot: async () => {},
      releaseEpisodeSlot: async () => {},
      beginStep: async () => () => {},
      checkState: () => {
        throw new ApiError(413, "state_too_large", "over quota");
      },
    };
    const a = instance(repo, new ScriptedExecutor(), quota);
    const { episode_id: id } = await a.service.reset(T, {});
    expect((await failure(a.service.step(T, id, { code: "x" }))).status).toBe(413);
    expect(repo.executions).toMatchObject([{ reason: "state_too_large" }]);
  });

  it("an executor timeout (504) is metered with its wall time and keeps its claim until it lapses; a failing commit is metered", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    a.executor.answer = () => {
      throw new ExecutorTimeoutError();
    };
    expect((await failure(a.service.step(T, id, { code: "x" }))).status).toBe(504);
    a.executor.answer = undefined;
    // The timed-out invocation may still run: nothing else runs on the episode until its claim lapses.
    expect((await failure(a.service.step(T, id, { code: "y" }))).code).toBe("step_in_progress");
    repo.expireClaims();
    repo.beforeCommit = async () => {
      throw new Error("store down");
    };
    await expect(a.service.step(T, id, { code: "y" })).rejects.toThrow("store down");
    expect(repo.executions.map((e) => e.reason)).toEqual(["executor_timeout", "commit_failed"]);
  });

  it("answers an executor whose process ended mid-step as a crashed step with the state as before", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    await a.service.step(T, id, { code: "a" });
    a.executor.answer = () => {
      throw new ExecutorCrashedError();
    };
    const crashed = await a.service.step(T, id, { code: "kill" });
    a.executor.answer = undefined;
    await a.service.step(T, id, { code: "b" });
    expect(crashed.body.observation.exit_code).toBe(1);
    expect(crashed.body.info).toMatchObject({ crashed: true, error_code: "crashed" });
    expect(crashed.body.step_count).toBe(2);
    // The step after it ran on the state before the crash: "kill" never became part of it.
    expect(ScriptedExecutor.cells(a.executor.calls.at(-1)?.snapshot ?? null)).toEqual(["a"]);
  });

  it("clamps exit codes to 0..255 (else 1)", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const seen: number[] = [];
    for (const code of [0, 2, 255, 256, 2 ** 60, -1, 1.5, true, "3", null]) {
      a.executor.answer = () => ({ exit_code: code as number });
      seen.push((await a.service.step(T, id, { code: "x" })).body.observation.exit_code);
    }
    expect(seen).toEqual([0, 2, 255, 1, 1, 1, 1, 1, 1, 1]);
    expect((await a.service.state(T, id)).last_exit_code).toBe(1);
  });
});

describe("history pages and episode lifecycle", () => {
  it("pages the history with limit and next_cursor; a cursor from before a reset is refused", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, { episode_id: "paged" });
    for (let i = 1; i <= 5; i++) await a.service.step(T, id, { code: `s${i}` });
    const p1 = await a.service.history(T, id, { limit: 2 });
    const p2 = await a.service.history(T, id, { limit: 2, cursor: p1.next_cursor as string });
    const p3 = await a.service.history(T, id, { limit: 2, cursor: p2.next_cursor as string });
    expect([p1, p2, p3].map((p) => p.steps.map((s) => s.code))).toEqual([["s1", "s2"], ["s3", "s4"], ["s5"]]);
    expect(p3.next_cursor).toBeNull();
    expect((await a.service.history(T, id)).steps).toHaveLength(5);
    const streamed = [];
    for await (const s of (await a.service.historyStream(T, id)).steps) streamed.push(s.step);
    expect(streamed).toEqual([1, 2, 3, 4, 5]);
    await a.service.reset(T, { episode_id: "paged" });
    const err = await failure(a.service.history(T, id, { cursor: p1.next_cursor as string }));
    expect(err.status).toBe(422);
  });

  it("reset of an existing id and delete discard the warm workers; delete frees the slot", async () => {
    const repo = new FakeEpisodeRepository();
    const released: string[] = [];
    const tenancy: EpisodeTenancyHooks = {
      reserveEpisodeSlot: async () => {},
      releaseEpisodeSlot: async (ctx) => {
        released.push(ctx.episodeId);
      },
      beginStep: async () => () => {},
      checkState: () => {},
    };
    const a = instance(repo, new ScriptedExecutor(), tenancy);
    await a.service.reset(T, { episode_id: "e1" });
    expect(a.executor.discards).toEqual([]); // nothing to discard for a new id
    await a.service.reset(T, { episode_id: "e1" });
    await a.service.delete(T, "e1");
    expect(a.executor.discards).toEqual([
      { tenantId: T, episodeId: "e1" },
      { tenantId: T, episodeId: "e1" },
    ]);
    expect(released).toEqual(["e1"]);
    expect((await failure(a.service.state(T, "e1"))).status).toBe(404);
  });

  it("another tenant's episode is not there (404), and its steps do not run", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    expect((await failure(a.service.step("tenant-b", id, { code: "x" }))).status).toBe(404);
    expect(a.executor.calls).toHaveLength(0);
  });
});
