// `npm start`: the whole coding-env on one machine. Honours PORT (8000), HOST (127.0.0.1),
// CODING_ENV_DATA_DIR (.data/ in the checkout; episodes survive a restart),
// CODING_ENV_API_INSTANCES (1), CODING_ENV_EXECUTOR_MODE (local | lambda) and
// CODING_ENV_LOG_REQUESTS (on: one console line per request; `npm start -- --quiet` turns it off).
// Ctrl-C stops every part; if one part crashes the others are stopped and the process exits non-zero.
import { createServer } from "node:net";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { API_ENV } from "../functions/src/config.js";

// The AWS SDK warns on every start that its 2027 releases will need Node 22; the local stack pins
// its SDK version, so the warning is noise on a newcomer's first command (set the variable to
// "false" to see it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

import { checkPackageSet } from "../functions/src/local/package-check.js";

let quiet = false;
try {
  quiet = parseArgs({ options: { quiet: { type: "boolean", short: "q" } } }).values.quiet === true;
} catch (err) {
  console.error(`${(err as Error).message}\nUsage: npm start [-- --quiet]`);
  process.exit(2);
}
// The API instances read it from the environment they are given (this process's).
if (quiet) process.env[API_ENV.logRequests] = "off";
else process.env[API_ENV.logRequests] ??= "on";

function portFromEnv(): number {
  const raw = process.env.PORT;
  if (raw === undefined || raw === "") return 8000;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be an integer 0..65535, got '${raw}'`);
    process.exit(2);
  }
  return port;
}

const port = portFromEnv();
const host = process.env.HOST || "127.0.0.1";
// CODING_ENV_DATA_DIR=:memory: keeps everything in memory (benchmarks, throwaway stacks).
const rawDataDir = process.env[API_ENV.dataDir];
const dataDir = rawDataDir === ":memory:" ? null : rawDataDir ? resolve(rawDataDir) : undefined;

function portInUse(): never {
  console.error(
    `coding-env failed to start: port ${port} on ${host} is in use (another coding-env?). Set PORT to a free one, e.g. PORT=${port === 8000 ? 8001 : port + 1} npm start`,
  );
  process.exit(1);
}

/** Whether `port` on `host` can be listened on now (any error but EADDRINUSE is the stack's to report). */
function portIsFree(): Promise<boolean> {
  return new Promise((done) => {
    const probe = createServer();
    probe.once("error", (err: NodeJS.ErrnoException) => done(err.code !== "EADDRINUSE"));
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => done(true)));
  });
}

// A busy port is said at once: before the stack's modules load and its executor and DynamoDB start
// (only to be stopped again). The stack's own listen still reports one taken meanwhile.
if (port !== 0 && !(await portIsFree())) portInUse();
const { startLocalStack } = await import("../functions/src/local/stack.js");

// The package set user code is offered (packages.json): say what is missing and how to install it.
const packageProblem = await checkPackageSet(resolve(import.meta.dirname, ".."));
if (packageProblem) console.warn(packageProblem);

let stack: Awaited<ReturnType<typeof startLocalStack>>;
try {
  // CODING_ENV_DYNAMODB_THREAD=worker runs dynalite on its own thread (default: the API's thread).
  const dynamodbThread = process.env[API_ENV.dynamodbThread] === "worker" ? "worker" : "main";
  stack = await startLocalStack({
    port,
    host,
    dynamodbThread,
    ...(dataDir !== undefined ? { dataDir } : {}),
    logExecutor: true,
  });
} catch (err) {
  if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") portInUse();
  console.error(`coding-env failed to start: ${(err as Error).message}`);
  process.exit(1);
}

console.log(`coding-env is running
  API   ${stack.baseUrl}
  Web   ${stack.baseUrl}/web
  Docs  ${stack.baseUrl}/docs
  Data  ${dataDir === null ? "in memory (lost on exit)" : (dataDir ?? resolve(".data"))}
  Auth  ${process.env[API_ENV.auth] === "on" ? "on (API keys required)" : "off (CODING_ENV_AUTH=on to require API keys)"}
  Keys  ${dataDir === null ? `CODING_ENV_DYNAMODB_ENDPOINT=${stack.dynamodbEndpoint} CODING_ENV_LOCAL_ACCESS_KEY_ID=${stack.credentials.accessKeyId} ` : ""}${dataDir ? `CODING_ENV_DATA_DIR=${dataDir} ` : ""}npm run keys -- create --tenant <id>${dataDir === null ? "" : "   (it finds this stack through its data folder's stack.json)"}
  Logs  ${process.env[API_ENV.logRequests] === "on" ? "one line per request (npm start -- --quiet, or CODING_ENV_LOG_REQUESTS=off, for none)" : "off"}
Press Ctrl-C to stop.`);

let stopping = false;
async function shutdown(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(code || 1), 15_000);
  force.unref();
  try {
    await stack.stop();
  } catch (err) {
    console.error(`error while stopping: ${(err as Error).message}`);
    code = code || 1;
  }
  process.exit(code);
}

process.on("SIGINT", () => {
  console.log("\nstopping coding-env…");
  void shutdown(0);
});
process.on("SIGTERM", () => void shutdown(0));
void stack.crashed.then((exit) => {
  console.error(`coding-env: ${exit.message}\nstopping the other parts.`);
  void shutdown(1);
});
