// The roll-up itself, independent of the store: what the change stream says happened (episodes
// created, executions with their usage) summed per tenant and UTC day into the increments the
// usage repository adds. store/dynamodb-usage-stream.ts turns DynamoDB stream records into these
// events; stream-aggregator.ts wires the two together.
import { formatScaled, GB_SECONDS_SCALE, gbSeconds, parseScaled } from "../tenancy/metering.js";
import type { UsageIncrement } from "../tenancy/repositories.js";

/** One metered fact from the change stream. */
export type UsageEvent =
  /** A new incarnation of an episode (reset, fork), with the state it starts with. */
  | {
      readonly kind: "episode_created";
      readonly tenantId: string;
      readonly day: string;
      readonly stateBytes: number;
    }
  /** One executor run: a committed step (with the state it stores) or an execution that did not commit. */
  | {
      readonly kind: "execution";
      readonly tenantId: string;
      readonly day: string;
      readonly executorMs: number;
      readonly committed: boolean;
      readonly stateBytes: number;
    };

interface DayUsage {
  tenantId: string;
  day: string;
  steps: number;
  executions: number;
  executorMs: number;
  gbSeconds: bigint;
  episodesCreated: number;
  stateBytes: number;
}

/**
 * Sums `events` per tenant and day (GB-seconds exactly, at `memoryMb`): one increment per tenant and
 * day, in the order each was first seen.
 */
export function rollUpUsage(events: Iterable<UsageEvent>, memoryMb: number): UsageIncrement[] {
  const usage = new Map<string, DayUsage>();
  const dayOf = (tenantId: string, day: string): DayUsage => {
    const key = `${tenantId}\u0000${day}`;
    let u = usage.get(key);
    if (!u) {
      u = {
        tenantId,
        day,
        steps: 0,
        executions: 0,
        executorMs: 0,
        gbSeconds: 0n,
        episodesCreated: 0,
        stateBytes: 0,
      };
      usage.set(key, u);
    }
    return u;
  };
  for (const event of events) {
    const u = dayOf(event.tenantId, event.day);
    if (event.kind === "episode_created") {
      u.episodesCreated += 1;
      u.stateBytes += event.stateBytes;
      continue;
    }
    u.executions += 1;
    u.executorMs += event.executorMs;
    u.gbSeconds += parseScaled(gbSeconds(event.executorMs, memoryMb), GB_SECONDS_SCALE);
    if (event.committed) {
      u.steps += 1;
      u.stateBytes += event.stateBytes;
    }
  }
  return [...usage.values()].map((u) => ({
    tenantId: u.tenantId,
    day: u.day,
    steps: u.steps,
    executions: u.executions,
    executorMs: u.executorMs,
    gbSeconds: formatScaled(u.gbSeconds, GB_SECONDS_SCALE),
    episodesCreated: u.episodesCreated,
    stateBytes: u.stateBytes,
  }));
}
