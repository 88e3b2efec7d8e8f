// The executor's package set as it reports it (`{"op": "packages"}`: each package of
// python-runtime/coding_env_runtime/packages.json with its installed version, null when missing),
// shown by `/metadata`. Asked once per API process and cached: the executor's image (or the local
// Python) does not change while the process runs. A failed call is not cached, and `/metadata`
// answers without the field rather than failing.
import { InvokeCommand, type LambdaClient } from "@aws-sdk/client-lambda";

/** The tenant the question is asked as (Lambda's tenant isolation requires one; it runs no code). */
export const PACKAGES_TENANT_ID = "_metadata";

export type PackageVersions = Record<string, string | null>;

export class PackageSetReporter {
  private pending: Promise<PackageVersions | undefined> | undefined;

  constructor(
    private readonly client: LambdaClient,
    private readonly functionName: string,
    private readonly timeoutMs = 10_000,
  ) {}

  /** The executor's package versions, or undefined when it could not be asked just now. */
  get(): Promise<PackageVersions | undefined> {
    if (!this.pending) {
      this.pending = this.ask().then((versions) => {
        if (versions === undefined) this.pending = undefined;
        return versions;
      });
    }
    return this.pending;
  }

  private async ask(): Promise<PackageVersions | undefined> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), this.timeoutMs);
    try {
      const out = await this.client.send(
        new InvokeCommand({
          FunctionName: this.functionName,
          InvocationType: "RequestResponse",
          TenantId: PACKAGES_TENANT_ID,
          Payload: Buffer.from(JSON.stringify({ contract_version: 1, op: "packages" })),
        }),
        { abortSignal: abort.signal },
      );
      if (out.FunctionError || !out.Payload) return undefined;
      const reply = JSON.parse(Buffer.from(out.Payload).toString("utf8")) as { packages?: unknown };
      const found = reply.packages;
      if (typeof found !== "object" || found === null) return undefined;
      const versions: PackageVersions = {};
      for (const [name, version] of Object.entries(found)) {
        versions[name] = typeof version === "string" ? version : null;
      }
      return versions;
    } catch (err) {
      console.error(
        JSON.stringify({ level: "WARN", message: "executor packages query failed", cause: String(err) }),
      );
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }
}
