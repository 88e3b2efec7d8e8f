// What every Lambda function of the stack shares: arm64, JSON logs without Lambda's platform lines,
// and (for the Node.js functions) the esbuild bundling the tests load exactly as deployed.
import { fileURLToPath } from "node:url";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";

/** The repository root (ends in `/`): entries and the lock file are found from it. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

/** Log levels the deployment accepts (`coding-env:logLevel`). */
export type LogLevel = "DEBUG" | "INFO" | "WARN" | "ERROR";

/**
 * How the Node.js functions are bundled (local esbuild, never Docker): one ES module with every
 * dependency inside (the AWS SDK too, so AWS runs the versions the local stack and the tests run),
 * source maps.
 */
export const apiBundlingOptions: nodejs.BundlingOptions = {
  forceDockerBundling: false,
  format: nodejs.OutputFormat.ESM,
  target: "node22",
  mainFields: ["module", "main"],
  externalModules: [],
  minify: true,
  sourceMap: true,
  sourcesContent: false,
  // CommonJS dependencies bundled into an ES module still call require().
  banner:
    "import { createRequire as __cdkCreateRequire } from 'node:module'; const require = __cdkCreateRequire(import.meta.url);",
};

/**
 * Logging of every function: JSON lines, the application's level from the settings, and system
 * level WARN, which drops the START/END/REPORT platform lines (about 1 KB of CloudWatch ingestion
 * per invocation, the largest part of the log cost of a step) and keeps platform warnings.
 */
export function loggingOptions(
  level: LogLevel,
): Pick<lambda.FunctionOptions, "loggingFormat" | "applicationLogLevelV2" | "systemLogLevelV2"> {
  return {
    loggingFormat: lambda.LoggingFormat.JSON,
    applicationLogLevelV2: lambda.ApplicationLogLevel[level],
    systemLogLevelV2: lambda.SystemLogLevel.WARN,
  };
}

/** The settings of a Node.js 22 function of this repository, bundled like the API. */
export function nodeFunctionDefaults(
  entry: string,
): Pick<
  nodejs.NodejsFunctionProps,
  "entry" | "handler" | "projectRoot" | "depsLockFilePath" | "runtime" | "architecture" | "bundling"
> {
  return {
    entry,
    handler: "handler",
    projectRoot: repoRoot,
    depsLockFilePath: `${repoRoot}package-lock.json`,
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    bundling: apiBundlingOptions,
  };
}
