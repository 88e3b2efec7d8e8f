// The deploy commands the docs tell a user to type print no AWS SDK notice: the CDK CLI bundles the
// AWS SDK, whose once-per-process "needs Node 22" notice only the npm scripts switch off (they
// preload scripts/quiet-aws-sdk.mjs). So the docs name npm scripts, never `npx cdk`, and every
// documented script that runs the CDK CLI preloads the flag.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const QUIET = "--import ./scripts/quiet-aws-sdk.mjs";

/** The tracked Markdown files, read once (file -> text). */
const docs = new Map(
  execFileSync("git", ["ls-files", "-z", "--", "*.md"], { cwd: root, encoding: "utf8" })
    .split("\0")
    .filter((f) => f !== "" && !f.includes("node_modules/"))
    .map((f) => [f, readFileSync(join(root, f), "utf8")] as const),
);
const scripts = (
  JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }
).scripts;

describe("documented deploy commands", () => {
  it("the docs never tell a user to run the CDK CLI directly (npx cdk)", () => {
    const direct: string[] = [];
    for (const [file, text] of docs) {
      text.split("\n").forEach((line, i) => {
        if (/\bnpx (aws-)?cdk\b/.test(line)) direct.push(`${file}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(direct).toEqual([]);
  });

  it("every documented npm script that runs the CDK CLI preloads scripts/quiet-aws-sdk.mjs", () => {
    const documented = new Set<string>();
    for (const text of docs.values())
      for (const m of text.matchAll(/\bnpm run ([\w:-]+)/g)) documented.add(m[1] ?? "");
    // The README's and DEPLOY.md's deployment steps, at least.
    expect([...documented]).toEqual(expect.arrayContaining(["bootstrap", "deploy", "destroy", "synth"]));
    const cdkScripts = [...documented].filter((name) => scripts[name]?.includes("aws-cdk/bin/cdk"));
    expect(cdkScripts.sort()).toEqual(["bootstrap", "deploy", "destroy", "synth"]);
    for (const name of cdkScripts) {
      // The flag is preloaded by the node process that runs the CLI.
      expect(scripts[name], name).toMatch(
        /node --import \.\/scripts\/quiet-aws-sdk\.mjs node_modules\/aws-cdk\/bin\/cdk /,
      );
    }
  });

  it("the preloaded module turns the AWS SDK's Node version notice off (unless the user set it)", () => {
    const read = (env: Record<string, string>) =>
      execFileSync(
        process.execPath,
        [
          ...QUIET.split(" "),
          "-e",
          "console.log(process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED)",
        ],
        { cwd: root, encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env } },
      ).trim();
    expect(read({})).toBe("true");
    expect(read({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "false" })).toBe("false");
  });
});
