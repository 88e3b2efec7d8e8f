// `npm run keys -- <command>`: manage API keys (hosted mode) in the service table, locally or in AWS.
// Only the SHA-256 of a key is stored; `create` prints the key once, as its last line of output.
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { API_ENV } from "../functions/src/config.js";
import { readStackFile } from "../functions/src/local/stack-file.js";
import { dynamoDbApiKeyStore } from "../functions/src/store/dynamodb-api-keys.js";
import type { ApiKeyRecord } from "../functions/src/tenancy/keys.js";
import {
  type QuotaOverrides,
  quotaOverridesFromWire,
  quotaOverridesToWire,
} from "../functions/src/tenancy/quotas.js";

const HELP = `Manage coding-env API keys.

Usage:
  npm run keys -- create --tenant <id> [--name <label>] [quota options] [--json]
  npm run keys -- list [--tenant <id>] [--json]
  npm run keys -- revoke <key id | displayed prefix | key> [--json]

--json prints one JSON document and nothing else (create's includes the key). npm itself prints
a banner first: use \`npm run -s keys -- ... --json\` (or \`npx tsx scripts/keys.ts ...\`) to pipe it.

create prints the new key as the last line of its output. It is shown only this once: only its
SHA-256 is stored. Quota options override the deployment's defaults for this key:
  --steps-per-day <n>  --active-episodes <n>  --max-state-bytes <n>  --max-step-timeout-s <s>

list prints key id, tenant, name, created time, state and overrides (never a key); it scans the
table, which is fine for an admin command. revoke takes effect at once in DynamoDB; a running API
may accept the key from its in-memory cache for up to CODING_ENV_AUTH_CACHE_TTL_MS more (10 s).

Which table:
  CODING_ENV_TABLE               table name (default: coding-env)
  CODING_ENV_DYNAMODB_ENDPOINT   endpoint override, for the local stack (dynalite)
  AWS_REGION, AWS_PROFILE, ...   the usual AWS settings, for a deployed table

For the local stack nothing needs setting: a running \`npm start\` records its DynamoDB endpoint and
start-up credentials in <data folder>/stack.json (CODING_ENV_DATA_DIR, default .data), e.g.
  npm run keys -- create --tenant acme
(CODING_ENV_DYNAMODB_ENDPOINT with CODING_ENV_LOCAL_ACCESS_KEY_ID overrides it.)
The local stack enforces keys only when started with CODING_ENV_AUTH=on.
For a deployment, CODING_ENV_TABLE is the stack's table name (a CloudFormation output).
`;

class UsageError extends Error {}

// The AWS SDK warns once per process that its 2027 releases need Node 22: noise in an admin
// command's output (and it would break `--json`). Set it to "false" to see the notice.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

// `npm start`'s default data folder is the checkout's .data, wherever the command is run from.
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function dataDirFromEnv(env: NodeJS.ProcessEnv): string {
  const dataDir = env[API_ENV.dataDir];
  return dataDir ? resolve(dataDir) : resolve(repoRoot, ".data");
}

function clientFromEnv(env: NodeJS.ProcessEnv): DynamoDBClient {
  // A running local stack records its DynamoDB endpoint and start-up credentials in its data
  // folder (readable by its owner only); the local DynamoDB refuses any other credentials.
  const stack = readStackFile(dataDirFromEnv(env));
  const endpoint = env[API_ENV.dynamodbEndpoint] || stack?.dynamodbEndpoint;
  if (!endpoint) return new DynamoDBClient({});
  const localAccessKeyId = env[API_ENV.localAccessKeyId];
  const credentials = localAccessKeyId
    ? { accessKeyId: localAccessKeyId, secretAccessKey: env[API_ENV.localSecretAccessKey] ?? "local" }
    : stack && stack.dynamodbEndpoint === endpoint
      ? { accessKeyId: stack.accessKeyId, secretAccessKey: stack.secretAccessKey }
      : env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY }
        : { accessKeyId: "local", secretAccessKey: "local" };
  return new DynamoDBClient({
    endpoint,
    region: env.AWS_REGION ?? "us-east-1",
    credentials,
    maxAttempts: 2,
  });
}

function describe(record: ApiKeyRecord): string {
  const overrides = quotaOverridesToWire(record.quotas);
  const quotaText = Object.entries(overrides)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  return [
    record.keyId,
    record.keyPrefix ? `${record.keyPrefix}…` : "-",
    record.tenantId,
    record.name || "-",
    record.createdAt,
    record.revoked ? `revoked ${record.revokedAt ?? ""}`.trim() : "active",
    quotaText || "-",
  ].join("\t");
}

function publicView(record: ApiKeyRecord): Record<string, unknown> {
  return {
    key_id: record.keyId,
    key_prefix: record.keyPrefix,
    tenant_id: record.tenantId,
    name: record.name,
    created_at: record.createdAt,
    revoked: record.revoked,
    ...(record.revokedAt ? { revoked_at: record.revokedAt } : {}),
    quotas: quotaOverridesToWire(record.quotas),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      tenant: { type: "string" },
      name: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
      "steps-per-day": { type: "string" },
      "active-episodes": { type: "string" },
      "max-state-bytes": { type: "string" },
      "max-step-timeout-s": { type: "string" },
    },
  });
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\nTry --help.\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || command === undefined || command === "help") {
    process.stdout.write(HELP);
    return command === undefined && !values.help ? 2 : 0;
  }
  const tableName = env[API_ENV.table] || "coding-env";
  const client = clientFromEnv(env);
  const store = dynamoDbApiKeyStore({ client, tableName });
  try {
    switch (command) {
      case "create": {
        if (!values.tenant) throw new UsageError("create needs --tenant <id>.");
        let quotas: QuotaOverrides;
        try {
          quotas = quotaOverridesFromWire({
            steps_per_day: values["steps-per-day"],
            active_episodes: values["active-episodes"],
            max_state_bytes: values["max-state-bytes"],
            max_step_timeout_s: values["max-step-timeout-s"],
          });
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
        const { key, record } = await store.create({
          tenantId: values.tenant,
          ...(values.name ? { name: values.name } : {}),
          quotas,
        });
        if (values.json) {
          process.stdout.write(`${JSON.stringify({ ...publicView(record), key }, null, 2)}\n`);
          return 0;
        }
        process.stdout.write(
          `Created API key ${record.keyId} for tenant '${record.tenantId}' (name '${record.name}') in table ${tableName}.\n` +
            "Copy the key now: it is shown only once and cannot be recovered.\n" +
            `${key}\n`,
        );
        return 0;
      }
      case "list": {
        const records = await store.list(values.tenant ? { tenantId: values.tenant } : {});
        if (values.json) {
          process.stdout.write(`${JSON.stringify(records.map(publicView), null, 2)}\n`);
        } else {
          process.stdout.write("key_id\tprefix\ttenant\tname\tcreated_at\tstate\tquotas\n");
          for (const record of records) process.stdout.write(`${describe(record)}\n`);
        }
        return 0;
      }
      case "revoke": {
        const [ref] = rest;
        if (!ref) throw new UsageError("revoke needs a key id (key_…), a displayed prefix or the key.");
        const record = await store.revoke(ref);
        if (values.json) {
          process.stdout.write(`${JSON.stringify(publicView(record), null, 2)}\n`);
          return 0;
        }
        process.stdout.write(
          `Revoked ${record.keyId} (tenant '${record.tenantId}', name '${record.name}').\n`,
        );
        return 0;
      }
      default:
        throw new UsageError(`Unknown command '${command}'. Try --help.`);
    }
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    if (name === "ResourceNotFoundException") {
      process.stderr.write(
        `Table '${tableName}' not found. Set CODING_ENV_TABLE (and CODING_ENV_DYNAMODB_ENDPOINT locally).\n`,
      );
      return 1;
    }
    const code = (err as { code?: string }).code;
    if (code === "ECONNREFUSED" || code === "ENOTFOUND") {
      process.stderr.write(`Cannot reach DynamoDB (${env[API_ENV.dynamodbEndpoint] ?? "AWS"}): ${code}.\n`);
      return 1;
    }
    if (name === "CredentialsProviderError" && !env[API_ENV.dynamodbEndpoint]) {
      process.stderr.write(
        `No running local stack found (${dataDirFromEnv(env)}/stack.json: start one with npm start, ` +
          "or set CODING_ENV_DATA_DIR to its data folder) and no AWS credentials for a deployed table.\n",
      );
      return 1;
    }
    process.stderr.write(`${(err as Error).message || name || "error"}\n`);
    return 1;
  } finally {
    client.destroy();
  }
}

const isEntry =
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("scripts/keys.ts");
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
