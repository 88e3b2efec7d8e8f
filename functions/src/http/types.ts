// What the app is built from (`createApp`'s dependencies) and what its handlers share: the context
// variables the tenant middleware sets. Route modules (functions/src/routes/) import these.
import type { UpgradeWebSocket } from "hono/ws";
import type { ApiConfig } from "../config.js";
import type { EpisodeService } from "../core/episodes.js";

export interface WebAsset {
  readonly contentType: string;
  readonly body: string;
}

/** Dependencies of `createApp`. */
export interface AppDeps {
  readonly episodes: EpisodeService;
  readonly config: ApiConfig;
  /**
   * Hosted mode (`functions/src/tenancy/`, `HostedTenancy`): who is calling (401 when auth is on and
   * the key is bad), the request's tenant scope, and `GET /usage`. Without it every request is the
   * `local` tenant, and a server with `config.authRequired` refuses every non-public request.
   */
  readonly tenancy?: AppTenancy;
  /** The HumanAgent page and Swagger UI assets, keyed by URL path. @default {} */
  readonly webAssets?: Readonly<Record<string, WebAsset>>;
  /**
   * The server's WebSocket upgrade (e.g. `@hono/node-server`'s), which enables OpenEnv's `/ws`.
   * @default none: `/ws` is not served by this app (AWS: a WebSocket API in front of ws-lambda.ts)
   */
  readonly upgradeWebSocket?: UpgradeWebSocket;
  /**
   * The address the local stack listens on: turns on the `Host` check for it, localhost and
   * `config.allowedHosts` (DNS rebinding). Without it the check runs only when
   * `config.allowedHosts` is set (AWS: API Gateway's host or a custom domain).
   * @default none
   */
  readonly localBindAddress?: string;
  /**
   * The executor's package set (name -> installed version, null when missing), reported by
   * `/metadata` (`functions/src/executor/package-set.ts`). @default none: no `packages` field
   */
  readonly packages?: () => Promise<Record<string, string | null> | undefined>;
  /** Version reported by `/metadata`. @default "0.1.0" */
  readonly version?: string;
  /**
   * Structured logs: one line per request, and unhandled errors with their stack (logs only,
   * never responses). Powertools' `Logger` fits (`functions/src/lambda.ts`).
   * @default unhandled errors as JSON lines on stderr, no request lines
   */
  readonly logger?: AppLogger;
}

/** The part of a structured logger the app uses (Powertools' `Logger` has it). */
export interface AppLogger {
  info(message: string, attributes: Record<string, unknown>): void;
  error(message: string, attributes: Record<string, unknown>): void;
  debug?(message: string, attributes: Record<string, unknown>): void;
}

/** What the app needs of the tenancy layer. */
export interface AppTenancy {
  authenticate(headers: Headers): Promise<TenantScope>;
  runAs<T>(tenant: TenantScope, fn: () => Promise<T>): Promise<T>;
  usage(tenantId: string, from: string | undefined, to: string | undefined): Promise<unknown>;
}
export interface TenantScope {
  readonly tenantId: string;
}

/** The Hono environment of every route: the tenant the request runs as (set by `resolveTenant`). */
export type AppEnv = { Variables: { tenantId: string; tenant: TenantScope } };
