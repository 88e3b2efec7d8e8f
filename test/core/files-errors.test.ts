// How the core answers the executor's refusals of a files operation: each in its own terms, and an
// episode whose stored files the runtime refuses (a step left a forged archive) as that episode's
// own 409, never as a 502 of the service.
import { describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import { EpisodeService } from "../../functions/src/core/episodes.js";
import { ApiError } from "../../functions/src/core/errors.js";
import { FakeEpisodeRepository } from "./fake-episode-repository.js";
import { ScriptedExecutor } from "./scripted-executor.js";

const T = "tenant-files";

async function refusal(errorCode: string): Promise<ApiError> {
  const executor = new ScriptedExecutor();
  Object.assign(executor, { files: async () => ({ error_code: errorCode, message: "refused" }) });
  const service = new EpisodeService({
    repository: new FakeEpisodeRepository(),
    executor,
    config: defaultConfig,
    now: () => 1_800_000_000_000,
    sleep: () => new Promise((r) => setImmediate(r)),
    logError: () => {},
  });
  const { episode_id: id } = await service.reset(T, {});
  const err = await service
    .files()
    .list(T, id)
    .then(
      () => undefined,
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe("files operations refused by the executor", () => {
  it("stored files the runtime refuses are the episode's 409 files_unreadable, not a 502", async () => {
    const err = await refusal("snapshot_incompatible");
    expect(err.status).toBe(409);
    expect(err.code).toBe("files_unreadable");
    expect(err.message).toContain("reset");
  });

  it.each([
    ["not_found", 404, "file_not_found"],
    ["invalid_path", 400, "invalid_path"],
    ["too_large", 413, "payload_too_large"],
    ["something_else", 502, "executor_error"],
  ])("%s is answered %i %s", async (errorCode, status, code) => {
    const err = await refusal(errorCode);
    expect([err.status, err.code]).toEqual([status, code]);
  });
});
