// The Python executor Lambda: a container image with tenant isolation (one tenant per execution
// environment), no AWS permissions beyond its own log group, and by default no network at all.
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import { Platform } from "aws-cdk-lib/aws-ecr-assets";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as logs from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { type LogLevel, loggingOptions } from "./function-defaults.js";

/**
 * Memory of the executor Lambda kept for the runtime itself (Python, the zygote, idle workers):
 * user code gets the rest as its address-space limit, so a greedy cell ends as a clean
 * `MemoryError` instead of Lambda killing the whole execution environment.
 */
export const EXECUTOR_RUNTIME_RESERVE_MB = 256;

/**
 * Environment variables of the executor's settings that infra sets. The Python runtime reads them
 * in python-runtime/coding_env_runtime/options.py (the only module that does); infra cannot import
 * Python, so infra/test/settings-names.test.ts checks every name here is one options.py reads.
 */
export const EXECUTOR_ENV = Object.freeze({
  /** A cell's default memory (contract.py: `memory_mb` when the event names none). */
  workerMemoryMb: "CODING_ENV_WORKER_MEMORY_MB",
  /** The most memory an event may ask for. */
  workerMaxMemoryMb: "CODING_ENV_WORKER_MAX_MEMORY_MB",
});

export interface ExecutorOpts {
  readonly memoryMb: number;
  readonly timeoutS: number;
  readonly reservedConcurrency?: number;
  readonly internetAccess: boolean;
  /** Availability zones of the isolated VPC. @default the region's first two */
  readonly availabilityZones?: readonly string[];
  readonly logRetention: logs.RetentionDays;
  readonly logLevel: LogLevel;
  readonly imageDirectory: string;
}

export interface Executor {
  readonly fn: lambda.DockerImageFunction;
  readonly role: iam.Role;
  readonly vpc?: ec2.Vpc;
  /** The executor's security group in that VPC (HTTPS to S3 through the endpoint only). */
  readonly securityGroup?: ec2.SecurityGroup;
}

/**
 * Creates the executor in `scope` (ids kept from the first version of the stack, so an update
 * changes resources in place where CloudFormation can).
 */
export function createExecutor(scope: Construct, opts: ExecutorOpts): Executor {
  const logGroup = new logs.LogGroup(scope, "ExecutorLogs", {
    retention: opts.logRetention,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const role = new iam.Role(scope, "ExecutorRole", {
    assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    description: "coding-env Python executor: writes its own logs, nothing else",
  });
  logGroup.grantWrite(role);

  let vpc: ec2.Vpc | undefined;
  let securityGroup: ec2.SecurityGroup | undefined;
  let network: Pick<lambda.FunctionProps, "vpc" | "vpcSubnets" | "securityGroups"> = {};
  if (!opts.internetAccess) {
    vpc = new ec2.Vpc(scope, "ExecutorVpc", {
      // Lambda cannot attach functions in some zones (for example use1-az3): the zones can be named.
      ...(opts.availabilityZones ? { availabilityZones: [...opts.availabilityZones] } : { maxAzs: 2 }),
      natGateways: 0,
      subnetConfiguration: [{ name: "executor", subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      // The default security group is unused; restricting it would add a custom-resource Lambda.
      restrictDefaultSecurityGroup: false,
    });
    securityGroup = new ec2.SecurityGroup(scope, "ExecutorSecurityGroup", {
      vpc,
      description: "coding-env executor: no inbound; outbound only to S3 through the gateway endpoint",
      allowAllOutbound: false,
    });
    network = {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      securityGroups: [securityGroup],
    };
    // Lambda itself uses the execution role to manage the function's network interfaces; these
    // actions only work on "*" (DescribeNetworkInterfaces) and are what AWSLambdaVPCAccessExecutionRole
    // grants, without its logs:* on "*".
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "LambdaServiceManagesVpcNetworkInterfaces",
        actions: [
          "ec2:CreateNetworkInterface",
          "ec2:DescribeNetworkInterfaces",
          "ec2:DeleteNetworkInterface",
          "ec2:AssignPrivateIpAddresses",
          "ec2:UnassignPrivateIpAddresses",
        ],
        resources: ["*"],
      }),
    );
    // ...but the function's own code must not use them: requests made from inside the execution
    // environment carry lambda:SourceFunctionArn; Lambda's own ENI management does not.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "DenyNetworkInterfaceCallsFromFunctionCode",
        effect: iam.Effect.DENY,
        actions: ["ec2:*"],
        resources: ["*"],
        conditions: { Null: { "lambda:SourceFunctionArn": "false" } },
      }),
    );
  }

  const workerMemoryMb = String(opts.memoryMb - EXECUTOR_RUNTIME_RESERVE_MB);
  const fn = new lambda.DockerImageFunction(scope, "Executor", {
    description: "coding-env Python executor (one code cell per invocation, one tenant per environment)",
    code: lambda.DockerImageCode.fromImageAsset(opts.imageDirectory, {
      platform: Platform.LINUX_ARM64,
      // The handler of the executor contract (python-runtime/README.md), whatever the image's CMD.
      cmd: ["coding_env_runtime.handler.handler"],
      exclude: ["**/__pycache__", "**/*.pyc", ".venv", "**/.pytest_cache", "**/.mypy_cache"],
    }),
    architecture: lambda.Architecture.ARM_64,
    memorySize: opts.memoryMb,
    timeout: Duration.seconds(opts.timeoutS),
    role,
    logGroup,
    ...loggingOptions(opts.logLevel),
    // Lambda tenant isolation: an execution environment (Firecracker microVM) only ever serves
    // invocations of the one TenantId it was created for; the API sends the tenant of every step.
    // Fixed at creation: switching it on replaced the function.
    tenancyConfig: lambda.TenancyConfig.PER_TENANT,
    reservedConcurrentExecutions: opts.reservedConcurrency,
    environment: {
      // Per-deployment worker memory (python-runtime/coding_env_runtime/contract.py).
      [EXECUTOR_ENV.workerMemoryMb]: workerMemoryMb,
      [EXECUTOR_ENV.workerMaxMemoryMb]: workerMemoryMb,
    },
    ...network,
  });
  return { fn, role, vpc, ...(securityGroup ? { securityGroup } : {}) };
}
