// The body of `GET /state` (and `GET /episodes/{id}`) from a stored episode.
import type { Episode, Policy } from "./episode-repository.js";

export interface EpisodeState {
  episode_id: string;
  step_count: number;
  last_exit_code: number;
  policy: Policy;
  additional_imports: string[];
  step_timeout_s: number;
  ttl_s: number;
  seed?: number;
  forked_from?: string;
  created_at: string;
  updated_at: string;
  expires_at: string;
}

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
