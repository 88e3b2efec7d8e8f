// The SDK's wire types are generated from the API's /openapi.json (scripts/generate-sdk-types.ts):
// this fails when a schema changed and the committed file was not regenerated.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { generateSdkTypes, SDK_TYPES_PATH } from "../../scripts/generate-sdk-types.js";

describe("SDK wire types", () => {
  it("sdk/src/types.generated.ts is what /openapi.json generates (else: npx tsx scripts/generate-sdk-types.ts)", async () => {
    expect(readFileSync(SDK_TYPES_PATH, "utf8")).toBe(await generateSdkTypes());
  });

  it("carries the contract's rules: a strict CodeAction, float-documented rewards, nullable state ids", async () => {
    const source = await generateSdkTypes();
    const action = /export interface CodeAction \{[^}]*\}/.exec(source)?.[0] ?? "";
    expect(action).toContain("code: string;");
    expect(action).not.toContain("[extra: string]");
    expect(source).toMatch(/export interface CodeState \{[^}]*episode_id: string \| null;/);
    expect(source).toMatch(/export interface StepResponse \{[^}]*reward: number \| null;/);
  });
});
