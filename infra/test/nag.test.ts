// cdk-nag AwsSolutions checks on the deployed stack: no unacknowledged finding (errors or warnings),
// and every acknowledgement names a finding that really occurs and says why it is acceptable.
import { Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { afterAll, describe, expect, it } from "vitest";
import { removeSynthOutputs, synth } from "./synth.js";

afterAll(removeSynthOutputs);

/** Every AwsSolutions acknowledgement recorded with `Validations.of(x).acknowledge(...)` under `scope`. */
function acknowledgements(scope: IConstruct): { path: string; id: string; reason: string }[] {
  const found: { path: string; id: string; reason: string }[] = [];
  for (const node of scope.node.findAll()) {
    for (const entry of node.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [key, reason] of Object.entries(entry.data as Record<string, string>)) {
        const id = key.replace(/^annotation::/i, "");
        // aws-cdk-lib acknowledges some of its own CloudFormation-Validate rules; only ours matter here.
        if (id.startsWith("AwsSolutions-")) found.push({ path: node.node.path, id, reason });
      }
    }
  }
  return found;
}

/** The AwsSolutions pack with acknowledgements ignored, to see what each one hides. */
class AwsSolutionsChecksIgnoringAcknowledgements extends AwsSolutionsChecks {
  constructor() {
    super(undefined, { verbose: true });
    // isAcknowledged is private in cdk-nag; overriding it is the only way to list acknowledged findings.
    (this as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
  }
}

describe.each([
  ["default (isolated executor)", {}],
  ["executorInternetAccess=true", { executorInternetAccess: "true" }],
  [
    "custom domain",
    {
      domainName: "env.example.com",
      certificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/0b5d4c8e-1111-2222-3333-444455556666",
    },
  ],
])("cdk-nag AwsSolutions on the %s stack", (_name, context) => {
  const { stack } = synth({ context });

  it("reports no unacknowledged finding, error or warning", () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(stack);
    const findings = report.violations.map(
      (v) =>
        `${v.severity} ${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(", ")}: ${v.description}`,
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });

  it("acknowledges only findings that occur, each with a specific reason", () => {
    const acks = acknowledgements(stack);
    expect(acks.length).toBeGreaterThan(0);
    const raw = new AwsSolutionsChecksIgnoringAcknowledgements().validateScope(stack);
    const occurring = new Set(raw.violations.map((v) => v.ruleName));
    for (const ack of acks) {
      expect(occurring, `${ack.id} acknowledged at ${ack.path} but not found`).toContain(ack.id);
      expect(ack.reason.length, `reason of ${ack.id} at ${ack.path}`).toBeGreaterThanOrEqual(60);
    }
    // And the other way round: every raw finding is one of the acknowledged ones.
    expect([...occurring].sort()).toEqual([...new Set(acks.map((a) => a.id))].sort());
  });
});
