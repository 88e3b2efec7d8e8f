// An episode's files: its working directory, kept in its Python state (the snapshot's files
// archive, python-runtime/coding_env_runtime/workfiles.py). Listing and reading ask the executor's
// `files` operation (no user code runs; the API never parses the snapshot). Writing is an upload
// committed as the episode's next state version with the same conditional write as a step: one
// strongly consistent read, one executor call, one write that fails if any step committed
// meanwhile (409), so an upload is exactly as durable and as conditional as a step. It appears in
// the history as a step whose `info.files_written` names the file (code empty, reward 0).

import type { z } from "zod";
import type { ApiConfig } from "../config.js";
import type { Executor, FilesRequest, FilesResult } from "../executor/executor.js";
import type { FileListSchema, FileWrittenSchema } from "../http/schemas.js";
import type { Episode, EpisodeRepository, StateTransfer, StepRecord } from "./episode-repository.js";
import {
  ApiError,
  ConflictError,
  EpisodeFilesUnreadableError,
  EpisodeNotFoundError,
  ExecutorError,
  PayloadTooLargeError,
  StateTooLargeError,
} from "./errors.js";
import { stateAfter, stateBytesOf, stateInput } from "./state-location.js";
import { claimEpisode, releaseClaim } from "./step-claim.js";
import type { EpisodeTenancyHooks } from "./tenancy-hooks.js";

/** Largest file uploaded or downloaded through the API (bytes; the runtime's own cap is 4 MiB). */
export const MAX_FILE_TRANSFER_BYTES = 1024 * 1024;
/** Longest file path (UTF-8 bytes), as the runtime's. */
export const MAX_FILE_PATH_BYTES = 1024;

/** Body of a successful `PUT /episodes/{id}/files/{path}` (the wire schema's type). */
export type FileWritten = z.output<typeof FileWrittenSchema>;
/** Body of `GET /episodes/{id}/files` (the wire schema's type). */
export type FileList = z.output<typeof FileListSchema>;

export class InvalidFilePathError extends ApiError {
  constructor(message: string) {
    super(400, "invalid_path", message);
  }
}

export class FileNotFoundError extends ApiError {
  constructor(path: string) {
    super(404, "file_not_found", `The episode has no file '${path.slice(0, 200)}'.`, {
      path: path.slice(0, 1024),
    });
  }
}

/** A relative path inside the episode's directory; anything else (traversal, absolute) is a 400. */
export function checkFilePath(path: string): string {
  const parts = path.split("/");
  if (
    path === "" ||
    path.includes("\u0000") ||
    path.includes("\\") ||
    path.startsWith("/") ||
    parts.some((p) => p === "" || p === "." || p === "..")
  ) {
    throw new InvalidFilePathError(
      "A file path is relative to the episode's directory, '/'-separated, without '.', '..', empty parts or backslashes.",
    );
  }
  if (Buffer.byteLength(path, "utf8") > MAX_FILE_PATH_BYTES) {
    throw new InvalidFilePathError(`A file path is at most ${MAX_FILE_PATH_BYTES} bytes.`);
  }
  return path;
}

export interface EpisodeFilesDeps {
  readonly repository: EpisodeRepository;
  readonly executor: Executor;
  readonly config: ApiConfig;
  readonly tenancy: EpisodeTenancyHooks;
  readonly now: () => number;
  /** Where a failed claim release is logged. @default stderr */
  readonly logError?: (message: string, err: unknown) => void;
}

export class EpisodeFiles {
  constructor(private readonly deps: EpisodeFilesDeps) {}

  private async load(tenantId: string, id: string): Promise<Episode> {
    const got = await this.deps.repository.load(tenantId, id, { nowMs: this.deps.now() });
    if (!got || got.episode.tenantId !== tenantId) throw new EpisodeNotFoundError(id);
    return got.episode;
  }

  /** The snapshot inline, or the pre-signed URLs of a state in S3 (and for a larger written one). */
  private stateOf(ep: Episode): Promise<{ snapshot: string | null; state?: StateTransfer }> {
    return stateInput(this.deps.repository, ep, this.deps.config.maxStateBytes);
  }

  private async call(req: FilesRequest): Promise<FilesResult> {
    if (!this.deps.executor.files) throw new ExecutorError("This executor cannot read episode files.");
    const result = await this.deps.executor.files(req);
    const path = req.action === "list" ? "" : req.path;
    switch (result.error_code) {
      case undefined:
      case null:
        return result;
      case "not_found":
        throw new FileNotFoundError(path);
      case "invalid_path":
        throw new InvalidFilePathError(result.message ?? "Invalid file path.");
      case "state_too_large":
        throw new StateTooLargeError(Number(result.snapshot_bytes ?? 0), this.deps.config.maxStateBytes);
      case "too_large":
        throw new PayloadTooLargeError(result.message ?? "The file is too large.", {
          limit_bytes: MAX_FILE_TRANSFER_BYTES,
        });
      case "snapshot_incompatible":
        // The episode's stored files are refused by the runtime (a forged or foreign archive):
        // the episode's own state, answered as such rather than as a failure of the executor.
        throw new EpisodeFilesUnreadableError(req.episodeId, result.error_code);
      default:
        throw new ExecutorError(result.message ?? "The episode's files could not be read.");
    }
  }

  async list(tenantId: string, id: string): Promise<FileList> {
    const ep = await this.load(tenantId, id);
    const state = await this.stateOf(ep);
    const result = await this.call({ action: "list", tenantId, episodeId: ep.id, ...state });
    return { episode_id: ep.id, files: Array.isArray(result.files) ? result.files : [] };
  }

  async read(tenantId: string, id: string, path: string): Promise<Uint8Array> {
    checkFilePath(path);
    const ep = await this.load(tenantId, id);
    const result = await this.call({
      action: "read",
      tenantId,
      episodeId: ep.id,
      ...(await this.stateOf(ep)),
      path,
    });
    const data = Buffer.from(result.content_base64 ?? "", "base64");
    if (data.byteLength > MAX_FILE_TRANSFER_BYTES) {
      throw new PayloadTooLargeError(
        `The file is ${data.byteLength} bytes; at most ${MAX_FILE_TRANSFER_BYTES} can be downloaded through the API (read it in a step).`,
        { limit_bytes: MAX_FILE_TRANSFER_BYTES },
      );
    }
    return data;
  }

  /** Writes one file: a new state version, committed like a step (409 if a step committed meanwhile). */
  async write(tenantId: string, id: string, path: string, content: Uint8Array): Promise<FileWritten> {
    checkFilePath(path);
    if (content.byteLength > MAX_FILE_TRANSFER_BYTES) {
      throw new PayloadTooLargeError(
        `The file is ${content.byteLength} bytes; at most ${MAX_FILE_TRANSFER_BYTES} can be uploaded through the API.`,
        { limit_bytes: MAX_FILE_TRANSFER_BYTES },
      );
    }
    const startMs = this.deps.now();
    const ep = await this.load(tenantId, id);
    // A new version like a step's: one at a time per episode, on every API instance.
    const claim = await claimEpisode(this.deps.repository, ep, {
      nowMs: startMs,
      limitS: ep.stepTimeoutS,
      graceS: this.deps.config.executorGraceS,
    });
    try {
      return await this.writeVersion(tenantId, ep, path, content, startMs);
    } catch (err) {
      // After a conflict a step committed over this write's version: its claim is void already.
      if (!(err instanceof ConflictError)) {
        const log =
          this.deps.logError ?? ((message: string, e: unknown) => console.error(message, String(e)));
        await releaseClaim(this.deps.repository, ep, claim, log);
      }
      throw err;
    }
  }

  /** The write of `write()` once the claim is held: the executor's new state, committed. */
  private async writeVersion(
    tenantId: string,
    ep: Episode,
    path: string,
    content: Uint8Array,
    startMs: number,
  ): Promise<FileWritten> {
    const invokeStart = performance.now();
    const state = await this.stateOf(ep);
    const result = await this.call({
      action: "write",
      tenantId,
      episodeId: ep.id,
      ...state,
      path,
      content,
    });
    const executorMs = performance.now() - invokeStart;
    if (typeof result.snapshot !== "string") throw new ExecutorError("The executor returned no state.");
    // A written state over the inline size is an S3 object the executor wrote (state-location.ts).
    const written = stateAfter(
      ep,
      { ...result, snapshot: result.snapshot },
      state.state ?? null,
      this.deps.now(),
    );
    const stateBytes = stateBytesOf(written);
    this.deps.tenancy.checkState({ tenantId, stateBytes });
    if (stateBytes > this.deps.config.maxStateBytes) {
      throw new StateTooLargeError(stateBytes, this.deps.config.maxStateBytes);
    }
    const nowMs = this.deps.now();
    const record: StepRecord = {
      step: ep.version + 1,
      code: "",
      observation: { stdout: "", stderr: "", exit_code: 0 },
      reward: 0.0,
      done: false,
      metadata: { last_code: "" },
      info: {
        files_written: [{ path, size: content.byteLength }],
        duration_ms: 0,
        timed_out: false,
        stdout_truncated: false,
        stderr_truncated: false,
        dropped_variables: [],
      },
      started_at: new Date(startMs).toISOString(),
      duration_ms: nowMs - startMs,
    };
    const committed = await this.deps.repository.commitStep({
      before: ep,
      snapshot: written.snapshot,
      ...(written.stateObject ? { stateObject: written.stateObject } : {}),
      lastExitCode: 0,
      nowMs,
      record,
      usage: { executorMs, stateBytes },
    });
    if (committed.kind !== "committed") throw new ConflictError(ep.id);
    return { episode_id: ep.id, path, size: content.byteLength, step_count: record.step };
  }
}
