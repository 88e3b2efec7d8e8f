// Test helpers: the app exactly as `cdk synth` builds it (createApp), without running bundlers unless
// asked, and readers for the parts of the template the tests look at.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Template } from "aws-cdk-lib/assertions";
import { inject } from "vitest";
import { createApp } from "../lib/coding-env-stack.js";

/** One synthesized stack and its template. */
export interface Synthesized {
  readonly app: ReturnType<typeof createApp>["app"];
  readonly stack: ReturnType<typeof createApp>["stack"];
  readonly template: Template;
  /** The template as JSON (CloudFormation). */
  readonly json: CfnTemplate;
  /** Cloud assembly directory (holds the staged assets when bundling ran). */
  readonly outdir: string;
}

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
}
export interface CfnTemplate {
  readonly Resources: Record<string, CfnResource>;
  readonly Outputs?: Record<string, { Value: unknown }>;
}

export interface SynthOpts {
  /** `coding-env:*` keys without the prefix, as `-c` would pass them. @default {} */
  readonly context?: Record<string, unknown>;
  /** Run the esbuild bundling of the API function (slower). @default false */
  readonly bundle?: boolean;
}

const outdirs: string[] = [];
/** The default app (no context, no bundling), synthesized once per test file: most tests read it. */
let defaultApp: Synthesized | undefined;

/** Deletes the cloud assemblies this process synthesized (call from `afterAll`). */
export function removeSynthOutputs(): void {
  defaultApp = undefined;
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Synthesizes the app as `cdk synth` would, into a fresh temporary directory. The default app
 * (no options) is synthesized once and shared: tests only read templates.
 */
export function synth(opts: SynthOpts = {}): Synthesized {
  const isDefault = !opts.bundle && Object.keys(opts.context ?? {}).length === 0;
  if (isDefault && defaultApp) return defaultApp;
  const synthesized = synthesizeApp(opts);
  if (isDefault) defaultApp = synthesized;
  return synthesized;
}

declare module "vitest" {
  interface ProvidedContext {
    /** A folder for this run's one bundled synthesis (infra/test/bundled-app.setup.ts). */
    bundledAppDir: string;
  }
}

/** A synthesized cloud assembly as the bundle tests read it: the template and the staged assets. */
export type SynthesizedAssembly = Pick<Synthesized, "json" | "outdir">;

/**
 * The app synthesized with bundling (each Node.js function's esbuild bundle staged as `cdk deploy`
 * uploads it), once per test run: bundling is most of a bundle test's CPU, and the bundles are the
 * same for every file. Under `npm test`, the CLI's `cdk synth` of the run (CLI_ASSEMBLY_VARIABLE).
 * Otherwise the first caller in any worker synthesizes into the run's folder (made by the global
 * setup); the others wait for its template. Without that folder, a synthesis of its own.
 */
export async function bundledApp(): Promise<SynthesizedAssembly> {
  const cliOutdir = process.env[CLI_ASSEMBLY_VARIABLE];
  if (cliOutdir) return cliAssembly(cliOutdir);
  let dir: string | undefined;
  try {
    dir = inject("bundledAppDir");
  } catch {
    dir = undefined;
  }
  if (!dir) return synth({ bundle: true });
  const outdir = join(dir, "cdk.out");
  const templateFile = join(dir, "template.json");
  const failedFile = join(dir, "failed");
  let first = true;
  try {
    mkdirSync(join(dir, "claimed"));
  } catch {
    first = false;
  }
  if (first) {
    try {
      const { json } = synthesizeApp({ bundle: true }, outdir);
      writeFileSync(`${templateFile}.part`, JSON.stringify(json));
      renameSync(`${templateFile}.part`, templateFile);
      return { json, outdir };
    } catch (err) {
      writeFileSync(failedFile, String(err));
      throw err;
    }
  }
  for (const start = Date.now(); Date.now() - start < 240_000; await sleep(100)) {
    if (existsSync(templateFile)) {
      return { json: JSON.parse(readFileSync(templateFile, "utf8")) as CfnTemplate, outdir };
    }
    if (existsSync(failedFile))
      throw new Error(`the bundled synthesis failed: ${readFileSync(failedFile, "utf8")}`);
  }
  throw new Error("the bundled synthesis did not finish in 240 s");
}

/**
 * Where `npm test` (scripts/test.mjs) has the CDK CLI write its one `cdk synth` (the app from
 * cdk.json, bundling, cdk-nag and the CLI's checks, as a user runs it); it writes the CLI's exit code
 * to `<dir>.exit` when it ends. The bundle tests then read that assembly instead of synthesizing
 * the app once more.
 */
export const CLI_ASSEMBLY_VARIABLE = "CODING_ENV_CDK_OUT";

/**
 * The CLI's cloud assembly in `outdir`, once its manifest is written: the app writes it after the
 * templates and the staged bundles, before the checks that end the synth (the CLI's exit code is the
 * synth step's own result), so the bundle tests need not wait for those.
 */
async function cliAssembly(outdir: string): Promise<SynthesizedAssembly> {
  const exitFile = `${outdir}.exit`;
  for (const start = Date.now(); Date.now() - start < 240_000; await sleep(100)) {
    const code = existsSync(exitFile) ? readFileSync(exitFile, "utf8").trim() : undefined;
    if (code !== undefined && code !== "0")
      throw new Error(`cdk synth failed (exit ${code}): see its output`);
    const templateFile = stackTemplateFile(outdir);
    if (templateFile) {
      return { json: JSON.parse(readFileSync(join(outdir, templateFile), "utf8")) as CfnTemplate, outdir };
    }
    if (code === "0") throw new Error(`cdk synth ended without a stack in ${outdir}`);
  }
  throw new Error("cdk synth did not write its assembly in 240 s");
}

/** The template file of the assembly's one stack, or undefined while its manifest is not (all) written. */
function stackTemplateFile(outdir: string): string | undefined {
  let manifest: { artifacts?: Record<string, { type: string; properties?: { templateFile?: string } }> };
  try {
    manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
  } catch {
    return undefined;
  }
  const stacks = Object.values(manifest.artifacts ?? {}).filter((a) => a.type === "aws:cloudformation:stack");
  return stacks.length === 1 ? stacks[0]?.properties?.templateFile : undefined;
}

function synthesizeApp(opts: SynthOpts, into?: string): Synthesized {
  // cdk.json's context first, as the CLI passes it.
  const cdkJson = JSON.parse(readFileSync(new URL("../../cdk.json", import.meta.url), "utf8")) as {
    context?: Record<string, unknown>;
  };
  const context: Record<string, unknown> = { ...cdkJson.context };
  for (const [key, value] of Object.entries(opts.context ?? {})) context[`coding-env:${key}`] = value;
  // The cdk-nag checks run in their own test (validateScope), not as a synth-time plugin here.
  if (context["coding-env:nag"] === undefined) context["coding-env:nag"] = false;
  // Skipping bundling is how the CDK CLI synthesizes stacks it does not deploy; assets are still staged.
  if (!opts.bundle) context["aws:cdk:bundling-stacks"] = [];
  // A given folder belongs to the caller (bundledApp's is removed by the global teardown).
  const outdir = into ?? mkdtempSync(join(tmpdir(), "coding-env-cdk-"));
  if (into === undefined) outdirs.push(outdir);
  const { app, stack } = createApp({ context, outdir });
  const template = withoutBuiltinValidation(() => Template.fromStack(stack));
  return { app, stack, template, json: template.toJSON() as CfnTemplate, outdir };
}

/**
 * Runs `synthesize` without aws-cdk-lib's built-in CloudFormation rule check (CDK_VALIDATION=false).
 * The check reports warnings only (it fails nothing) and costs ~2.5 s of CPU per synthesis, most of
 * these tests' time. `npm run synth` and a deploy run it on the app; npm test's `cdk synth` skips it too.
 */
function withoutBuiltinValidation<T>(synthesize: () => T): T {
  const before = process.env.CDK_VALIDATION;
  process.env.CDK_VALIDATION = "false";
  try {
    return synthesize();
  } finally {
    if (before === undefined) delete process.env.CDK_VALIDATION;
    else process.env.CDK_VALIDATION = before;
  }
}

/** The Properties of a resource; fails if it has none. */
/** A function's environment variables as the template gives them. */
export function variablesOf(fn: Pick<CfnResource, "Properties">): Record<string, unknown> {
  return (fn.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {};
}

/** The POWERTOOLS_SERVICE_NAME a Node.js function of the stack runs as. */
export function serviceOf(fn: Pick<CfnResource, "Properties">): unknown {
  return variablesOf(fn).POWERTOOLS_SERVICE_NAME;
}

/** A predicate for the stack's Node.js function running as `service` (e.g. `coding-env-api`). */
export const runsAs =
  (service: string) =>
  (fn: Pick<CfnResource, "Properties">): boolean =>
    serviceOf(fn) === service;

/** The executor: the stack's one container-image function. */
export const isExecutor = (fn: Pick<CfnResource, "Properties">): boolean =>
  fn.Properties?.PackageType === "Image";

export function propsOf(resource: CfnResource): Record<string, unknown> {
  if (!resource.Properties) throw new Error(`${resource.Type} has no Properties`);
  return resource.Properties;
}

/** Resources of one type, by logical id. */
export function resourcesOfType(json: CfnTemplate, type: string): [string, CfnResource][] {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type);
}

/** The only resource of `type` whose properties match `pick`; fails if there is not exactly one. */
export function onlyResource(
  json: CfnTemplate,
  type: string,
  pick: (r: CfnResource) => boolean = () => true,
): [string, CfnResource] {
  const found = resourcesOfType(json, type).filter(([, r]) => pick(r));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  return found[0] as [string, CfnResource];
}

/** One IAM statement, normalized: actions and resources always arrays. */
export interface Statement {
  readonly Effect: "Allow" | "Deny";
  readonly Action: string[];
  readonly Resource: unknown[];
  readonly Condition?: unknown;
}

/**
 * Every statement that applies to the role with logical id `roleId`: its inline policies, the
 * AWS::IAM::Policy resources attached to it, and a marker for each managed policy ARN.
 */
export function statementsOfRole(
  json: CfnTemplate,
  roleId: string,
): { statements: Statement[]; managedPolicies: unknown[] } {
  const role = json.Resources[roleId];
  if (role?.Type !== "AWS::IAM::Role") throw new Error(`no role ${roleId}`);
  const raw: Record<string, unknown>[] = [];
  for (const inline of (propsOf(role).Policies as {
    PolicyDocument: { Statement: Record<string, unknown>[] };
  }[]) ?? []) {
    raw.push(...inline.PolicyDocument.Statement);
  }
  for (const [, policy] of resourcesOfType(json, "AWS::IAM::Policy")) {
    const roles = (propsOf(policy).Roles as unknown[]) ?? [];
    if (!roles.some((r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId }))) continue;
    raw.push(...(propsOf(policy).PolicyDocument as { Statement: Record<string, unknown>[] }).Statement);
  }
  const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : v === undefined ? [] : [v]);
  const statements = raw.map((s) => ({
    Effect: s.Effect as "Allow" | "Deny",
    Action: asArray(s.Action) as string[],
    Resource: asArray(s.Resource),
    Condition: s.Condition,
  }));
  return { statements, managedPolicies: (propsOf(role).ManagedPolicyArns as unknown[]) ?? [] };
}

/** The logical id referenced by `{ "Fn::GetAtt": [id, attr] }` or `{ Ref: id }`. */
export function referencedId(value: unknown): string | undefined {
  if (value && typeof value === "object") {
    const v = value as Record<string, unknown>;
    if (typeof v.Ref === "string") return v.Ref;
    const getAtt = v["Fn::GetAtt"];
    if (Array.isArray(getAtt) && typeof getAtt[0] === "string") return getAtt[0];
  }
  return undefined;
}
