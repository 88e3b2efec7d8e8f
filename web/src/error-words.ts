// Every failure the page can meet, as a sentence a person can act on. The SDK's errors carry the
// API's code, message and details (docs/API.md); no DOM here, so the wording is tested on its own.
import { CodingEnvError } from "../../sdk/src/index.js";

/** A mistake in the page's own form, found before anything is sent; its message is the sentence. */
export class InputError extends Error {
  override readonly name = "InputError";
}

/** A server message worth quoting: not empty and not a proxy's HTML page. */
function serverWords(err: CodingEnvError): string {
  const message = err.message.trim();
  return message.startsWith("<") ? "" : message;
}

/**
 * Turns an error into a sentence a person can act on. The server's own message is kept where it
 * names the problem precisely (quota, key, validation); fixed causes get fixed wording.
 *
 * @example plainError(new NotFoundError("Episode 'x' does not exist.", { status: 404, code: "episode_not_found" }))
 *   // "This episode no longer exists (it may have expired or been deleted). Press Reset to start a new one."
 */
export function plainError(err: unknown): string {
  if (err instanceof InputError) return err.message;
  if (!(err instanceof CodingEnvError)) {
    return `Something went wrong in the page: ${err instanceof Error ? err.message : String(err)}`;
  }
  const server = serverWords(err);
  switch (err.code) {
    case "network_error":
      return "Could not reach the server. Check your connection and that the server is running, then try again.";
    case "client_timeout":
      return "The server did not answer in time. Check your connection and try again.";
    case "unauthorized":
      // The server's own words say what is wrong (missing, unknown, revoked...).
      return `The server did not accept the API key${server ? ` (“${server}”)` : ""}. Enter a valid key above and try again.`;
    case "episode_required":
      return "There is no episode yet. Press Reset to start one.";
    case "episode_not_found":
      return "This episode no longer exists (it may have expired or been deleted). Press Reset to start a new one.";
    case "file_not_found":
      return "That file is no longer in the episode. The file list has been refreshed.";
    case "invalid_path":
      return `The server refused the file name${server ? ` (“${server}”)` : ""}. Use a plain relative name.`;
    case "conflict":
      return "Another step is still running on this episode. Wait a moment and try again.";
    case "payload_too_large":
      return `That is too large to send at once${server ? ` (“${server}”)` : ""}. Split the code into smaller steps, or upload a smaller file.`;
    case "state_too_large":
      return "The episode's Python variables have grown too large to save. Delete big variables (del name) or press Reset.";
    case "quota_exceeded": {
      // The server's message names the quota and its limit; the page adds what a person can do.
      const resetsAt = err.details.resets_at;
      const resets =
        typeof resetsAt === "string" && !server.includes(resetsAt) ? ` It resets at ${resetsAt}.` : "";
      const freeSlot =
        err.details.quota === "active_episodes"
          ? " Delete an episode in “Your episodes” to free a slot."
          : "";
      return `${server || "Your usage quota is used up."}${resets}${freeSlot}`;
    }
    case "rate_limited": {
      const waitS = err.retryAfterMs === undefined ? 1 : Math.max(1, Math.ceil(err.retryAfterMs / 1000));
      return `Too many requests. Wait ${waitS} s and try again.`;
    }
    case "executor_timeout":
      return "The code runner did not answer in time. Try again; if it keeps happening, shorten the step.";
    case "executor_error":
      return "The code runner failed while running this step. Try again; the episode was not changed.";
    case "validation_error":
    case "bad_request":
    case "invalid_json":
      return `The server rejected the request: ${server || "invalid input"}`;
    case "internal_error":
      return "The server hit an internal error. Try again in a moment.";
    default:
      // Not our error shape (a gateway or proxy answered): say what the status means.
      if (err.status === 401 || err.status === 403) {
        return "The server refused the request: an API key is missing or not valid. Enter a valid key above.";
      }
      if (err.status === 429) return "Too many requests. Wait a moment and try again.";
      if (err.status >= 500)
        return `The server is unavailable right now (HTTP ${err.status}). Try again in a moment.`;
      return server ? `${server} (HTTP ${err.status})` : `The server answered HTTP ${err.status}.`;
  }
}
