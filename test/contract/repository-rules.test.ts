// Rules of the repository's shape that no single feature test would notice breaking: every runtime
// dependency is used, the core and tenancy stay free of DynamoDB (the store adapters own the item
// layouts), and no file points outside the repository.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const thisFile = "test/contract/repository-rules.test.ts";

/** Tracked files under `paths` with one of the extensions, read once. */
function sources(paths: string[], extensions: string[]): Map<string, string> {
  const listed = execFileSync("git", ["ls-files", "-z", "--", ...paths], { cwd: root, encoding: "utf8" })
    .split("\0")
    .filter((f) => f !== "" && extensions.some((ext) => f.endsWith(ext)));
  return new Map(listed.map((f) => [f, readFileSync(join(root, f), "utf8")]));
}

const CODE = [".ts", ".mts", ".mjs", ".js", ".tsx"];

describe("repository rules", () => {
  it("every runtime dependency in package.json is imported or resolved somewhere", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const code = [
      ...sources(["functions", "infra", "scripts", "web", "test", "bench", "sdk/src"], CODE).values(),
    ];
    const unused = Object.keys(pkg.dependencies).filter((dep) => {
      const specifier = new RegExp(
        `(from\\s+|import\\(|require\\(|require\\.resolve\\()["']${dep.replace(/[/.]/g, "\\$&")}(/[^"']*)?["']`,
      );
      return !code.some((text) => specifier.test(text));
    });
    expect(unused).toEqual([]);
  });

  it("the core and tenancy import no DynamoDB client: item layouts live in the store adapters", () => {
    const offenders = [...sources(["functions/src/core", "functions/src/tenancy"], CODE)]
      .filter(([, text]) => /["']@aws-sdk\/(client-dynamodb|lib-dynamodb|util-dynamodb)["']/.test(text))
      .map(([file]) => file);
    expect(offenders).toEqual([]);
    // The rule has something to check: the store does import them.
    const store = [...sources(["functions/src/store"], CODE).values()];
    expect(store.some((text) => text.includes('"@aws-sdk/client-dynamodb"'))).toBe(true);
  });

  it("no file points outside the repository (a sibling checkout or this machine's folders)", () => {
    const outside = /\.\.\/shared\b|(?<![\w.])\/work\/(?!\.\.)/;
    const offenders = [
      ...sources(["."], [...CODE, ".py", ".md", ".json", ".toml", ".cfg", ".sh", ".yml", ".yaml", ".html"]),
    ]
      .filter(([file, text]) => file !== thisFile && file !== "package-lock.json" && outside.test(text))
      .map(([file]) => file);
    // One test asserts that tracebacks do not leak this machine's checkout path: it names it on purpose.
    expect(offenders.filter((f) => f !== "python-runtime/tests/test_semantics.py")).toEqual([]);
  });
});
