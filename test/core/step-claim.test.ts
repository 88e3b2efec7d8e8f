// The step claim's branches in the core: one step at a time per episode on any number of API
// instances (two services over one fake repository are two instances, which share no in-process
// state), a committed step needing no release, a step that did not commit giving its claim back,
// and a claim left by a crashed attempt lapsing. The DynamoDB condition itself is tested against
// dynalite in test/store/step-claims.test.ts, and the whole path in Lambda mode in
// test/isolation/lambda-mode-concurrency.test.ts.
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import { EpisodeService } from "../../functions/src/core/episodes.js";
import { ExecutorError, ExecutorThrottledError } from "../../functions/src/core/errors.js";
import { failure } from "./api-failure.js";
import { FakeEpisodeRepository } from "./fake-episode-repository.js";
import { gate, ScriptedExecutor } from "./scripted-executor.js";

const T = "tenant-c";
const NOW = 1_800_000_000_000;

function instance(repository: FakeEpisodeRepository, now: () => number = () => NOW) {
  const executor = new ScriptedExecutor();
  const service = new EpisodeService({
    repository,
    executor,
    config: { ...defaultConfig, maxStateBytes: 1000, executorGraceS: 6 },
    now,
    sleep: () => new Promise((r) => setImmediate(r)),
    logError: () => {},
  });
  return { service, executor };
}

/** Holds instance `x`'s next executor call until the returned `release` is called. */
function holdNext(x: { executor: ScriptedExecutor }) {
  const held = gate();
  const started = gate();
  x.executor.answer = async () => {
    started.open();
    await held.wait;
    return {};
  };
  return {
    started: started.wait,
    release: () => {
      x.executor.answer = undefined;
      held.open();
    },
  };
}

describe("the step claim: one step at a time per episode on every API instance", () => {
  it("a second step on another instance while one runs: 409 step_in_progress before the executor, not metered", async () => {
    // Prepare: A's step is held in its executor
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const hold = holdNext(a);
    const running = a.service.step(T, id, { code: "first" });
    await hold.started;
    // Act
    const err = await failure(b.service.step(T, id, { code: "second", request_id: "other" }));
    hold.release();
    await running;
    // Assert: B's cell never reached an executor, nothing of it was metered, A committed
    expect(err.status).toBe(409);
    expect(err.code).toBe("step_in_progress");
    expect(err.details).toEqual({ episode_id: id });
    expect(b.executor.calls).toHaveLength(0);
    expect(repo.executions).toEqual([]);
    expect(
      ScriptedExecutor.cells((await repo.load(T, id, { nowMs: NOW }))?.episode.snapshot ?? null),
    ).toEqual(["first"]);
  });

  it("the claim lasts the step's limit plus the executor's grace and 2 s; it names the version read", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const { episode_id: id } = await a.service.reset(T, { step_timeout_s: 10 });
    await a.service.step(T, id, { code: "one", timeout_s: 3 });
    expect(repo.claims.get(`${T}/${id}`)).toMatchObject({ base: 0, untilMs: NOW + (3 + 6 + 2) * 1000 });
    await a.service.step(T, id, { code: "two", request_id: "r2" });
    expect(repo.claims.get(`${T}/${id}`)).toMatchObject({
      base: 1,
      untilMs: NOW + (10 + 6 + 2) * 1000,
      requestId: "r2",
    });
  });

  it("a committed step needs no release: the next step on either instance claims over it", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    for (let i = 0; i < 4; i++) await (i % 2 === 0 ? a : b).service.step(T, id, { code: `c${i}` });
    expect(repo.calls.claimStep).toBe(4);
    expect(repo.calls.releaseStep).toBeUndefined();
    expect((await repo.load(T, id, { nowMs: NOW }))?.episode.version).toBe(4);
  });

  it("a step that did not commit (413, executor failure, throttling) gives its claim back: the next one runs at once", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    const failures: Array<() => never | object> = [
      () => ({ snapshot: Buffer.alloc(2000).toString("base64") }),
      () => {
        throw new ExecutorError();
      },
      () => {
        throw new ExecutorThrottledError(1);
      },
      () => ({ error_code: "busy", exit_code: 1, duration_ms: 0 }),
    ];
    const codes: string[] = [];
    for (const answer of failures) {
      a.executor.answer = answer;
      codes.push((await failure(a.service.step(T, id, { code: "fails" }))).code);
      // Act: the next step, on the other instance
      await b.service.step(T, id, { code: "next" });
    }
    expect(codes).toEqual(["state_too_large", "executor_error", "executor_throttled", "step_in_progress"]);
    expect(repo.calls.releaseStep).toBe(4);
    expect(b.executor.calls).toHaveLength(4);
    expect((await repo.load(T, id, { nowMs: NOW }))?.episode.version).toBe(4);
  });

  it("a claim left by a crashed attempt blocks until its deadline, then the next step runs", async () => {
    // Prepare: a claim on the current version whose attempt never came back
    let now = NOW;
    const repo = new FakeEpisodeRepository();
    const a = instance(repo, () => now);
    const { episode_id: id } = await a.service.reset(T, {});
    const episode = (await repo.load(T, id, { nowMs: now }))?.episode;
    if (!episode) throw new Error("no episode");
    await repo.claimStep({ episode, nowMs: now, untilMs: now + 5_000, requestId: "lost" });
    // Act and assert: refused while it is live, runs once it has lapsed
    expect((await failure(a.service.step(T, id, { code: "early" }))).code).toBe("step_in_progress");
    now += 5_001;
    const after = await a.service.step(T, id, { code: "late" });
    expect(after.body.step_count).toBe(1);
    expect(a.executor.calls.map((c) => c.code)).toEqual(["late"]);
  });

  it("the retry of a running request_id is told so, with how long to keep retrying; it never runs beside it", async () => {
    let now = NOW;
    const repo = new FakeEpisodeRepository();
    const a = instance(repo, () => now);
    const b = instance(repo, () => now);
    const { episode_id: id } = await a.service.reset(T, {});
    const hold = holdNext(a);
    const first = a.service.step(T, id, { code: "once", request_id: "r" });
    await hold.started;
    now += 4_000;
    const err = await failure(b.service.step(T, id, { code: "once", request_id: "r" }));
    hold.release();
    const answer = await first;
    const retried = await b.service.step(T, id, { code: "once", request_id: "r" });
    // 30 s default limit + 6 s grace + 2 s, 4 s of which have passed
    expect(err.details).toEqual({ episode_id: id, same_request: true, retry_within_s: 34 });
    expect(retried).toEqual({ body: answer.body, replayed: true });
    expect(a.executor.calls.length + b.executor.calls.length).toBe(1);
  });

  it("a file write is one at a time with steps too: 409 while another instance's step runs, before the executor", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    const { episode_id: id } = await a.service.reset(T, {});
    let writes = 0;
    Object.assign(b.executor, {
      files: async () => {
        writes++;
        return { snapshot: Buffer.from("with a file").toString("base64") };
      },
    });
    const hold = holdNext(a);
    const running = a.service.step(T, id, { code: "first" });
    await hold.started;
    const err = await failure(b.service.files().write(T, id, "a.txt", new Uint8Array([1])));
    hold.release();
    await running;
    const written = await b.service.files().write(T, id, "a.txt", new Uint8Array([1]));
    expect(err.code).toBe("step_in_progress");
    expect(written.step_count).toBe(2);
    expect(writes).toBe(1);
    expect(repo.calls.releaseStep).toBeUndefined();
  });

  it("a claim of the incarnation before a reset does not block the new one", async () => {
    const repo = new FakeEpisodeRepository();
    const a = instance(repo);
    const b = instance(repo);
    await a.service.reset(T, { episode_id: "again" });
    const hold = holdNext(a);
    const old = a.service.step(T, "again", { code: "old incarnation" });
    await hold.started;
    await b.service.reset(T, { episode_id: "again" });
    const fresh = await b.service.step(T, "again", { code: "new incarnation" });
    hold.release();
    expect((await failure(old)).code).toBe("conflict");
    expect(fresh.body.step_count).toBe(1);
  });
});
