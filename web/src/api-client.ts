// The page's one connection to the API and the API key it sends (only when the server requires
// one): the key is kept in sessionStorage, or in localStorage when "Remember" is ticked.
import { CodingEnv } from "../../sdk/src/index.js";

/** Storage key of the API key: sessionStorage by default, localStorage when "Remember" is ticked. */
const API_KEY_KEY = "coding-env:api-key";

/** Where the API lives: the page is served at `<base>/web`, so `<base>` is everything before it. */
export const basePath = location.pathname.replace(/\/web(\/.*)?$/, "");

export function storedKey(): string | undefined {
  return sessionStorage.getItem(API_KEY_KEY) ?? localStorage.getItem(API_KEY_KEY) ?? undefined;
}

/** Whether the stored key is kept across browser sessions ("Remember" was ticked). */
export function keyRemembered(): boolean {
  return Boolean(localStorage.getItem(API_KEY_KEY));
}

/**
 * The page's one connection to the API (the SDK's client, unbound): the tenant's calls go through
 * it, and every episode's client is made from it, so a key entered once applies to all of them.
 * Retries: the SDK's for lost answers (a step is resent with its request_id and replayed, not run
 * twice); a quota or a running step is shown at once instead of being waited out.
 */
export const api = new CodingEnv({
  baseUrl: location.origin + basePath,
  ...(storedKey() === undefined ? {} : { apiKey: storedKey() }),
  retry: { maxRetries: 2, initialDelayMs: 1000, retryOnConflict: false, retryOnRateLimit: false },
});

export function storeKey(key: string, remember: boolean): void {
  sessionStorage.removeItem(API_KEY_KEY);
  localStorage.removeItem(API_KEY_KEY);
  (remember ? localStorage : sessionStorage).setItem(API_KEY_KEY, key);
  api.setApiKey(key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(API_KEY_KEY);
  localStorage.removeItem(API_KEY_KEY);
  api.setApiKey(undefined);
}
