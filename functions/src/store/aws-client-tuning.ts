// Per-call work the AWS SDK v3 clients repeat for nothing, undone once per client (each of a step's
// Query, Invoke and PutItem pays it). Measured on a stub endpoint, together about 120 µs of CPU per
// call of ~400 µs (bench/api/cpu-per-step.ts measures the effect on a whole step):
//
// - The resolved config is a dictionary-mode object (the SDK redefines its `credentials` as an
//   accessor), and the middleware spread it into a new object several times per call
//   (`{ ...config }`, `{ ...config, ...context }`): ~15 µs each instead of ~1. V8 turns an object
//   back into a fast one when it serves as a prototype for a while (its "make prototypes fast" on
//   load-IC hits), so a throw-away object inheriting from the config is read until that happens.
//   Nothing about the config changes, not even its identity; if V8 ever stops doing this, the
//   calls are merely as slow as before.
// - The user-agent middleware rebuilds and escapes the same user agent on every call: it is built
//   once per client here from the same sections with the same escaping, and set as the same two
//   headers (without the SDK's per-call feature list, `m/...`, which only feeds AWS's statistics).
import type { BuildMiddleware, MiddlewareStack } from "@smithy/types";

/** What is tuned of an SDK client (any service's). */
interface SdkClient {
  readonly config: object;
  // biome-ignore lint/suspicious/noExplicitAny: every service's client has its own input/output types
  readonly middlewareStack: MiddlewareStack<any, any>;
}

/** A load through the prototype chain, in its own function so its load IC is the one that warms. */
function loadThrough(probe: { region?: unknown }): unknown {
  return probe.region;
}

/** Loads through an object inheriting from `config` until V8 has made `config` a fast object. */
function makeConfigFast(config: object): void {
  const probe = Object.create(config) as { region?: unknown };
  // Enough calls for the function's feedback (its load IC) to exist and reach the prototype.
  for (let i = 0; i < 256; i++) loadThrough(probe);
}

/** The SDK's escaping of user-agent names and versions (UA_NAME_ESCAPE_REGEX, UA_VALUE_ESCAPE_REGEX). */
const UA_NAME_UNSAFE = /[^!$%&'*+\-.^_`|~\w]/g;
const UA_VALUE_UNSAFE = /[^!$%&'*+\-.^_`|~\w#]/g;

/** One `[name, version?]` section as the SDK writes it: `name/version`, or `prefix/name#version`. */
function userAgentSection([name, version]: readonly [string, string?]): string {
  const escaped = name
    .split("/")
    .map((part) => part.replace(UA_NAME_UNSAFE, "-"))
    .join("/");
  const value = version?.replace(UA_VALUE_UNSAFE, "-");
  const slash = escaped.indexOf("/");
  const prefix = slash < 0 ? "" : escaped.slice(0, slash);
  const rest = prefix === "api" ? escaped.slice(slash + 1).toLowerCase() : escaped.slice(slash + 1);
  const parts = [prefix, rest, value].filter((p): p is string => p !== undefined && p.length > 0);
  return parts.reduce((acc, p, i) => (i === 0 ? p : i === 1 ? `${acc}/${p}` : `${acc}#${p}`), "");
}

/** Replaces the SDK's user-agent middleware by one that computes the same value once. */
function constantUserAgent(client: SdkClient): void {
  const config = client.config as {
    defaultUserAgentProvider?: () => Promise<ReadonlyArray<readonly [string, string?]>>;
    userAgentAppId?: () => Promise<string | undefined>;
  };
  let values: { full: string; sdk: string } | undefined;
  const middleware: BuildMiddleware<object, object> = (next) => async (args) => {
    const headers = (args.request as { headers?: Record<string, string> } | undefined)?.headers;
    if (headers) {
      if (values === undefined) {
        const sections = ((await config.defaultUserAgentProvider?.()) ?? []).map(userAgentSection);
        // As the SDK's middleware: the application id last (AWS_SDK_UA_APP_ID; Powertools sets it).
        const appId = await config.userAgentAppId?.();
        values = {
          full: [...sections, ...(appId ? [userAgentSection(["app", appId])] : [])].join(" "),
          sdk: sections.filter((section) => section.startsWith("aws-sdk-")).join(" "),
        };
      }
      headers["user-agent"] = values.full;
      if (values.sdk) headers["x-amz-user-agent"] = values.sdk;
    }
    return next(args);
  };
  client.middlewareStack.add(middleware, {
    name: "getUserAgentMiddleware",
    step: "build",
    priority: "low",
    override: true,
  });
}

/** Tunes an SDK client in place (see the top of this file) and returns it. */
export function tuneAwsClient<C extends SdkClient>(client: C): C {
  constantUserAgent(client);
  makeConfigFast(client.config as object);
  return client;
}
