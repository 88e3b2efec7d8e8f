// Large Python state (issue 13): the S3 bucket of state objects, the S3 gateway endpoint that lets
// the executor's isolated VPC reach it (no internet, no NAT), and the API role's rights on it.
// The executor has no AWS permissions of its own: the API pre-signs one GET and one PUT URL per
// step (functions/src/store/s3-state.ts) and the executor's runtime parent uses them through the
// endpoint. The bucket policy accepts object reads and writes only through that endpoint, so a
// leaked URL is useless outside the VPC; the API itself only lists and deletes (no bytes).
import { type CfnElement, Duration, RemovalPolicy, Stack, Validations } from "aws-cdk-lib";
import * as ec2 from "aws-cdk-lib/aws-ec2";
import * as iam from "aws-cdk-lib/aws-iam";
import * as s3 from "aws-cdk-lib/aws-s3";
import type { Construct } from "constructs";
import { STATE_OBJECT_LIFETIME_DAYS } from "../../functions/src/store/s3-lifecycle.js";

/** Key prefix of every state object (the store's default). */
export const STATE_PREFIX = "state/";

export interface StateBucketOpts {
  /** The executor's isolated VPC (none when the executor has internet access). */
  readonly vpc?: ec2.Vpc;
  /** The executor's security group: gets HTTPS egress, which only the S3 endpoint's route serves. */
  readonly executorSecurityGroup?: ec2.SecurityGroup;
  /** The API's role: pre-signs, lists and deletes state objects. */
  readonly apiRole: iam.Role;
  /**
   * Days after which a state object is deleted by the lifecycle rule. The API copies an object to a
   * fresh key before a new version names it once it is older than this minus the longest episode TTL
   * (functions/src/store/s3-lifecycle.ts), so a live episode never names an expired object; a
   * shorter rule would break that, so it is refused. Objects of deleted episodes are deleted by the
   * API at once, except those a fork shares; this rule removes those, expired episodes' objects,
   * and what a lost race or a crash left behind. @default STATE_OBJECT_LIFETIME_DAYS (60)
   */
  readonly retentionDays?: number;
  readonly removalPolicy?: RemovalPolicy;
}

export interface StateBucket {
  readonly bucket: s3.Bucket;
  readonly endpoint?: ec2.GatewayVpcEndpoint;
}

export function createStateBucket(scope: Construct, opts: StateBucketOpts): StateBucket {
  const retentionDays = opts.retentionDays ?? STATE_OBJECT_LIFETIME_DAYS;
  if (retentionDays < STATE_OBJECT_LIFETIME_DAYS) {
    throw new Error(
      `state objects must live at least ${STATE_OBJECT_LIFETIME_DAYS} days (the API's reuse window assumes it), got ${retentionDays}`,
    );
  }
  const bucket = new s3.Bucket(scope, "StateBucket", {
    encryption: s3.BucketEncryption.S3_MANAGED,
    enforceSSL: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    // Keys are never reused (a fresh one per version): versioning would only keep garbage.
    versioned: false,
    lifecycleRules: [
      { id: "expire-old-state", prefix: STATE_PREFIX, expiration: Duration.days(retentionDays) },
      { id: "abort-incomplete-uploads", abortIncompleteMultipartUploadAfter: Duration.days(1) },
    ],
    removalPolicy: opts.removalPolicy ?? RemovalPolicy.RETAIN,
  });
  const objects = bucket.arnForObjects(`${STATE_PREFIX}*`);

  // The API signs the URLs (so it holds get/put), lists an episode's prefix and deletes.
  opts.apiRole.addToPolicy(
    new iam.PolicyStatement({
      actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
      resources: [objects],
    }),
  );
  opts.apiRole.addToPolicy(
    new iam.PolicyStatement({
      actions: ["s3:ListBucket"],
      resources: [bucket.bucketArn],
      conditions: { StringLike: { "s3:prefix": [`${STATE_PREFIX}*`] } },
    }),
  );

  let endpoint: ec2.GatewayVpcEndpoint | undefined;
  if (opts.vpc) {
    endpoint = opts.vpc.addGatewayEndpoint("StateEndpoint", {
      service: ec2.GatewayVpcEndpointAwsService.S3,
      subnets: [{ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
    // Through the endpoint: only this bucket's state objects, only read and write.
    endpoint.addToPolicy(
      new iam.PolicyStatement({
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:GetObject", "s3:PutObject"],
        resources: [objects],
      }),
    );
    // Object bytes move only inside the VPC: a pre-signed URL used anywhere else is refused.
    bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ["s3:GetObject", "s3:PutObject"],
        resources: [objects],
        conditions: { StringNotEquals: { "aws:SourceVpce": endpoint.vpcEndpointId } },
      }),
    );
    // The isolated subnets' only route out is the endpoint's (S3's prefix list), so HTTPS egress
    // reaches S3 and nothing else.
    opts.executorSecurityGroup?.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      "S3 through the gateway endpoint",
    );
  }

  const bucketLogicalId = Stack.of(bucket).resolve(
    (bucket.node.defaultChild as CfnElement).logicalId,
  ) as string;
  Validations.of(opts.apiRole).acknowledge({
    id: `AwsSolutions-IAM5[Resource::<${bucketLogicalId}.Arn>/${STATE_PREFIX}*]`,
    reason:
      "The API signs one URL per step for a new object key (episode, version, random suffix) and deletes an episode's objects: it needs its rights on every key under the state prefix, and on nothing else in the bucket.",
  });
  Validations.of(bucket).acknowledge({
    id: "AwsSolutions-S1",
    reason:
      "State objects are written and read only with one-object pre-signed URLs issued per step by the API (whose requests are logged), through the executor VPC's endpoint; server access logs would need a second bucket and would log every step's state transfer.",
  });
  return { bucket, ...(endpoint ? { endpoint } : {}) };
}
