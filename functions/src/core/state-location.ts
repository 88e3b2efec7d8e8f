// Where a step's new state is, from the executor's reply: inline in `snapshot`, the S3 object the
// step was given to write (`put`), or the input state unchanged (`input`: inline or the same object,
// which the new version names again). Nothing of a reply is trusted beyond what the API asked for:
// a `put` must name the very key the API signed for this step.
import type { ExecuteResult } from "../executor/executor.js";
import type { Episode, EpisodeRepository, StateObjectRef, StateTransfer } from "./episode-repository.js";
import { ExecutorError } from "./errors.js";

const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * What the executor is given of `ep`'s state (a step's or a file request's): the snapshot inline,
 * or, with a state bucket, the pre-signed URLs to read its S3 object and to write a large new one.
 */
export async function stateInput(
  repository: EpisodeRepository,
  ep: Episode,
  maxBytes: number,
): Promise<{ snapshot: string | null; state?: StateTransfer }> {
  const transfer = (await repository.stateTransfer?.(ep, { maxBytes })) ?? null;
  return { snapshot: ep.stateObject ? null : ep.snapshot, ...(transfer ? { state: transfer } : {}) };
}

/** The parts of an executor's reply (a step's or a file write's) that say where the new state is. */
export type StateReply = Pick<
  ExecuteResult,
  "snapshot" | "state_location" | "state_ref" | "state_bytes" | "state_sha256"
>;

/** Bytes of a state: its S3 object's, or its inline snapshot's (none: 0). */
export function stateBytesOf(state: {
  readonly snapshot: string | null;
  readonly stateObject?: StateObjectRef | undefined;
}): number {
  if (state.stateObject) return state.stateObject.bytes;
  return state.snapshot === null ? 0 : Buffer.byteLength(state.snapshot, "base64");
}

export function stateAfter(
  before: Episode,
  answer: StateReply,
  transfer: StateTransfer | null,
  nowMs: number,
): { snapshot: string | null; stateObject: StateObjectRef | undefined } {
  switch (answer.state_location) {
    case "input":
      return { snapshot: before.snapshot, stateObject: before.stateObject };
    case "put": {
      const bytes = answer.state_bytes;
      if (
        !transfer ||
        answer.state_ref !== transfer.put_ref ||
        typeof bytes !== "number" ||
        !Number.isSafeInteger(bytes) ||
        bytes <= 0 ||
        typeof answer.state_sha256 !== "string" ||
        !SHA256_HEX.test(answer.state_sha256)
      ) {
        throw new ExecutorError(
          "The code executor named a state it was not asked to write; the episode is unchanged.",
        );
      }
      return {
        snapshot: null,
        stateObject: { key: transfer.put_ref, bytes, sha256: answer.state_sha256, createdAtMs: nowMs },
      };
    }
    default:
      // Inline (or an executor without a state bucket): the snapshot travels in the reply.
      return { snapshot: answer.snapshot, stateObject: undefined };
  }
}
