// The large-state parts of the template: the bucket (encrypted, TLS only, no public access, a
// lifecycle rule), the S3 gateway endpoint in the executor's isolated VPC, the bucket policy that
// accepts object bytes only through it, the API role's rights on the state prefix, and an executor
// that still has no AWS permissions of its own.
import { Match } from "aws-cdk-lib/assertions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultConfig } from "../../functions/src/config.js";
import {
  MAX_EPISODE_TTL_DAYS,
  REUSE_MAX_AGE_MS,
  STATE_OBJECT_LIFETIME_DAYS,
} from "../../functions/src/store/s3-lifecycle.js";
import { type CfnTemplate, removeSynthOutputs, resourcesOfType, type Synthesized, synth } from "./synth.js";

afterAll(removeSynthOutputs);

const actionsOf = (statement: Record<string, unknown>) => [statement.Action].flat() as string[];

describe("large state in S3", () => {
  let s: Synthesized;
  beforeAll(() => {
    s = synth();
  });

  it("the lifecycle rule outlives every object a live episode can name (reuse window + longest TTL)", () => {
    // An object is named again only while younger than the reuse window, by a version committed at
    // most 30 days (the longest ttl_s) before the episode expires.
    const longestTtlDays = defaultConfig.maxTtlS / 86_400;
    expect(MAX_EPISODE_TTL_DAYS).toBe(longestTtlDays);
    expect(REUSE_MAX_AGE_MS / 86_400_000 + longestTtlDays).toBeLessThan(STATE_OBJECT_LIFETIME_DAYS);
    expect(STATE_OBJECT_LIFETIME_DAYS).toBe(60);
  });

  it("the bucket is encrypted, TLS only, private, and expires old state objects", () => {
    s.template.hasResourceProperties("AWS::S3::Bucket", {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({
            Id: "expire-old-state",
            Prefix: "state/",
            ExpirationInDays: STATE_OBJECT_LIFETIME_DAYS,
            Status: "Enabled",
          }),
        ]),
      },
    });
    const policies = resourcesOfType(s.json, "AWS::S3::BucketPolicy");
    expect(policies).toHaveLength(1);
    const document = policies[0]?.[1].Properties?.PolicyDocument as
      | { Statement: Record<string, unknown>[] }
      | undefined;
    const statements = document?.Statement ?? [];
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
    );
    const viaEndpoint = statements.find((st) =>
      JSON.stringify(st.Condition ?? {}).includes("aws:SourceVpce"),
    );
    expect(viaEndpoint?.Effect).toBe("Deny");
    expect(actionsOf(viaEndpoint ?? {}).sort()).toEqual(["s3:GetObject", "s3:PutObject"]);
  });

  it("the executor's VPC reaches S3 through a gateway endpoint limited to the state objects", () => {
    const endpoints = resourcesOfType(s.json, "AWS::EC2::VPCEndpoint");
    expect(endpoints).toHaveLength(1);
    const props = endpoints[0]?.[1].Properties ?? {};
    expect(props.VpcEndpointType).toBe("Gateway");
    expect(JSON.stringify(props.ServiceName)).toContain(".s3");
    const statements = (props.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
    expect(statements.flatMap(actionsOf).sort()).toEqual(["s3:GetObject", "s3:PutObject"]);
    // No NAT, no internet gateway: the endpoint's route is the only way out.
    expect(resourcesOfType(s.json, "AWS::EC2::NatGateway")).toHaveLength(0);
    expect(resourcesOfType(s.json, "AWS::EC2::InternetGateway")).toHaveLength(0);
  });

  it("the API role may sign, list and delete state objects; the executor role has no S3 action", () => {
    const policies = resourcesOfType(s.json as CfnTemplate, "AWS::IAM::Policy");
    const s3Statements = policies.flatMap(([, policy]) =>
      (
        (policy.Properties?.PolicyDocument as { Statement?: Record<string, unknown>[] } | undefined)
          ?.Statement ?? []
      )
        .filter((st) => actionsOf(st).some((a) => a.startsWith("s3:")))
        .map((st) => ({ roles: JSON.stringify(policy.Properties?.Roles), st })),
    );
    const actions = s3Statements.flatMap(({ st }) => actionsOf(st)).sort();
    expect(actions).toEqual(["s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject"]);
    for (const { roles } of s3Statements) {
      expect(roles).toContain("ApiRole");
      expect(roles).not.toContain("ExecutorRole");
    }
    s.template.hasResourceProperties("AWS::Lambda::Function", {
      Environment: { Variables: Match.objectLike({ CODING_ENV_STATE_BUCKET: Match.anyValue() }) },
    });
  });
});
