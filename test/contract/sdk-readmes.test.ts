// The SDK READMEs ship inside their packages (the npm tarball, the Python package's metadata), where
// the rest of the repository is not: they link nothing relative, and the facts they state about a
// deployment are the code's.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AWS_TIMEOUTS, defaultConfig } from "../../functions/src/config.js";

const root = join(import.meta.dirname, "..", "..");
const READMES = ["sdk/README.md", "sdk-python/README.md"];
const read = (file: string) => readFileSync(join(root, file), "utf8");

describe("the SDK READMEs", () => {
  it.each(READMES)("%s links nothing relative (a package's user has no ../README.md)", (file) => {
    const relative = [...read(file).matchAll(/\]\(([^)]+)\)/g)]
      .map((m) => m[1] ?? "")
      .filter((target) => !/^(https?:|mailto:|#)/.test(target));
    expect(relative).toEqual([]);
  });

  it.each(READMES)("%s states the default step limits the code sets (locally and in AWS)", (file) => {
    const text = read(file).replace(/\s+/g, " ");
    expect(text).toContain(`${defaultConfig.defaultStepTimeoutS} s locally`);
    expect(text).toContain(`${AWS_TIMEOUTS.maxStepTimeoutS} s in AWS`);
    expect(text).not.toMatch(/\b25 s in AWS/);
  });
});
