// The local stack's console log: one line per request (`npm start` turns it on; tests and benches
// leave it off). The API's structured request attributes become a line a person reads at a glance.
import { API_ENV } from "../config.js";
import type { AppLogger } from "../http/types.js";

/** `POST /step 200 12.3ms episode=ep_… tenant=local` (no episode: `episode=-`). */
export function formatRequestLine(attributes: Record<string, unknown>): string {
  const duration = typeof attributes.duration_ms === "number" ? attributes.duration_ms.toFixed(1) : "?";
  return [
    attributes.method,
    attributes.path,
    attributes.status,
    `${duration}ms`,
    `episode=${attributes.episode_id ?? "-"}`,
    `tenant=${attributes.tenant_id ?? "-"}`,
  ].join(" ");
}

/** A logger that prints every request line with `write` and unhandled errors as JSON on stderr. */
export function consoleRequestLogger(write: (line: string) => void = console.log): AppLogger {
  const request = (message: string, attributes: Record<string, unknown>) => {
    if (message === "request") write(formatRequestLine(attributes));
    else write(`${message} ${JSON.stringify(attributes)}`);
  };
  return {
    info: request,
    debug: request,
    error: (message, attributes) => console.error(JSON.stringify({ level: "ERROR", message, ...attributes })),
  };
}

/** Whether request lines are on: `CODING_ENV_LOG_REQUESTS=on` (`npm start` sets it unless quiet). */
export function requestLogEnabled(env: Record<string, string | undefined>): boolean {
  return env[API_ENV.logRequests] === "on";
}
