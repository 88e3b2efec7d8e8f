// The episode's step claim in the core's terms: taken before the executor runs a step's code or
// rewrites the state for a file write, so "one at a time per episode" holds on every API instance
// (the repository keeps it: store/dynamodb-step-claims.ts). The in-process checks in front of it
// only save the write when the overlap is in this process.
import type { Episode, EpisodeRepository, StepClaim } from "./episode-repository.js";
import { StepInProgressError } from "./errors.js";

/** Seconds a claim outlives its limit and the executor's grace: clock skew between instances. */
export const CLAIM_SLACK_S = 2;

export interface ClaimOpts {
  readonly nowMs: number;
  /** The operation's own limit in seconds (a step's timeout). */
  readonly limitS: number;
  /** What the executor may take beyond it (ApiConfig.executorGraceS). */
  readonly graceS: number;
  readonly requestId?: string;
}

/**
 * Takes the episode's claim until `limitS + graceS + CLAIM_SLACK_S` from now (a claim left by a
 * crashed attempt lapses then). Held by another attempt: 409 `step_in_progress`, saying so when
 * that attempt is this request's own first one (retry the same request_id for its result).
 */
export async function claimEpisode(
  repository: EpisodeRepository,
  episode: Episode,
  opts: ClaimOpts,
): Promise<StepClaim> {
  const got = await repository.claimStep({
    episode,
    nowMs: opts.nowMs,
    untilMs: opts.nowMs + (opts.limitS + opts.graceS + CLAIM_SLACK_S) * 1000,
    ...(opts.requestId !== undefined ? { requestId: opts.requestId } : {}),
  });
  if (got.kind === "claimed") return got.claim;
  if (!got.sameRequest) throw new StepInProgressError(episode.id);
  throw new StepInProgressError(episode.id, {
    retryWithinS: Math.max(1, Math.ceil((got.untilMs - opts.nowMs) / 1000)),
  });
}

/** Gives back the claim of an operation that did not commit (best effort: else it lapses). */
export async function releaseClaim(
  repository: EpisodeRepository,
  episode: Episode,
  claim: StepClaim,
  logError: (message: string, err: unknown) => void,
): Promise<void> {
  try {
    await repository.releaseStep(episode, claim);
  } catch (err) {
    logError("could not release a step claim", err);
  }
}
