// Metering out of the step's write (issue 11): the table's change stream feeds a Lambda that rolls
// step records up into per-tenant, per-day usage items (functions/src/metering/stream-aggregator.ts,
// the same code the local stack runs on a timer), so concurrent steps of one tenant never contend
// on one usage item.
import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import type * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import * as eventSources from "aws-cdk-lib/aws-lambda-event-sources";
import * as nodejs from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as sqs from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { API_ENV } from "../../functions/src/config.js";
import { type LogLevel, loggingOptions, nodeFunctionDefaults, repoRoot } from "./function-defaults.js";

/**
 * How the stream is read. A larger batch and window mean fewer invocations and fewer usage
 * writes (one UpdateItem per tenant-day per batch) but a later usage total: the daily step quota
 * can overshoot by what arrives within one window plus the retries of a failing batch.
 */
export const USAGE_STREAM = {
  /** Records per invocation (DynamoDB Streams allows up to 10,000). */
  batchSize: 1000,
  /** Seconds Lambda gathers records before invoking, unless the batch fills first. */
  maxBatchingWindowS: 5,
  /** Retries of a failing batch (each split in two first) before it goes to the dead-letter queue. */
  retryAttempts: 10,
} as const;

export interface UsageAggregatorProps {
  readonly table: dynamodb.Table;
  readonly logRetention: logs.RetentionDays;
  readonly logLevel: LogLevel;
  /** Executor memory, for the GB-seconds of each execution. */
  readonly executorMemoryMb: number;
  /** @default `functions/src/aggregator-lambda.ts` of this repository */
  readonly entry?: string;
}

/** The stream consumer, its dead-letter queue and its least-privilege role. */
export class UsageAggregator extends Construct {
  readonly fn: nodejs.NodejsFunction;
  /** Where a batch that failed every retry is described (shard and sequence numbers, not the records). */
  readonly deadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: UsageAggregatorProps) {
    super(scope, id);
    const logGroup = new logs.LogGroup(this, "Logs", {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, "Role", {
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
      description: "coding-env usage roll-up: reads the table's stream, updates usage items, its own logs",
    });
    logGroup.grantWrite(role);
    // Usage items are updated in place (ADD); an expired episode's remaining items (history) are
    // found by their key and deleted in batches. Nothing else: no Scan, no table administration.
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: "RollUpUsageAndDeleteExpiredHistory",
        actions: ["dynamodb:UpdateItem", "dynamodb:Query", "dynamodb:BatchWriteItem"],
        resources: [props.table.tableArn],
      }),
    );
    props.table.encryptionKey?.grant(role, "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*");

    this.deadLetterQueue = new sqs.Queue(this, "DeadLetters", {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    this.fn = new nodejs.NodejsFunction(this, "Function", {
      ...nodeFunctionDefaults(props.entry ?? `${repoRoot}functions/src/aggregator-lambda.ts`),
      description: "coding-env usage roll-up (DynamoDB stream of step records -> usage per tenant and day)",
      memorySize: 256,
      // A batch is a few UpdateItems per tenant-day; a minute leaves room for throttled retries.
      timeout: Duration.seconds(60),
      role,
      logGroup,
      ...loggingOptions(props.logLevel),
      environment: {
        NODE_OPTIONS: "--enable-source-maps",
        LOG_LEVEL: props.logLevel,
        POWERTOOLS_SERVICE_NAME: "coding-env-usage",
        [API_ENV.table]: props.table.tableName,
        [API_ENV.executorMemoryMb]: String(props.executorMemoryMb),
      },
    });
    this.fn.addEventSource(
      new eventSources.DynamoEventSource(props.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: USAGE_STREAM.batchSize,
        maxBatchingWindow: Duration.seconds(USAGE_STREAM.maxBatchingWindowS),
        bisectBatchOnError: true,
        retryAttempts: USAGE_STREAM.retryAttempts,
        onFailure: new eventSources.SqsDlq(this.deadLetterQueue),
        parallelizationFactor: 1,
      }),
    );

    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "dynamodb:ListStreams, which Lambda's stream event source needs, does not support resource-level permissions; it lists stream ARNs only. Reading records is limited to this table's stream.",
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: "AwsSolutions-SQS3",
      reason:
        "This queue is itself the dead-letter destination of the stream event source (Lambda's on-failure destination, which cdk-nag cannot see); a queue behind it would only move the same failure records.",
    });
  }
}
