// The body of `GET /state` (and `GET /episodes/{id}`) from a stored episode.
import type { z } from "zod";
import type { CodeStateSchema } from "../http/schemas.js";
import type { Episode } from "./episode-repository.js";

type CodeState = z.output<typeof CodeStateSchema>;

/** A stored episode's state: the wire schema's CodeState with every episode field present. */
export type EpisodeState = Omit<CodeState, "episode_id"> &
  Required<
    Pick<
      CodeState,
      | "policy"
      | "additional_imports"
      | "step_timeout_s"
      | "ttl_s"
      | "created_at"
      | "updated_at"
      | "expires_at"
    >
  > & { episode_id: string };

/** The state body of an episode. */
export function toState(ep: Episode): EpisodeState {
  return {
    episode_id: ep.id,
    step_count: ep.version,
    last_exit_code: ep.lastExitCode,
    policy: ep.policy,
    additional_imports: [...ep.additionalImports],
    step_timeout_s: ep.stepTimeoutS,
    ttl_s: ep.ttlS,
    ...(ep.seed !== undefined ? { seed: ep.seed } : {}),
    ...(ep.forkedFrom !== undefined ? { forked_from: ep.forkedFrom } : {}),
    created_at: new Date(ep.createdAtMs).toISOString(),
    updated_at: new Date(ep.updatedAtMs).toISOString(),
    expires_at: new Date(ep.expiresAt * 1000).toISOString(),
  };
}
