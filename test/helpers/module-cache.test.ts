import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { moduleCacheDir } from "./module-cache.js";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function checkout(): string {
  const root = mkdtempSync(join(tmpdir(), "coding-env-module-cache-"));
  roots.push(root);
  mkdirSync(join(root, "src"));
  mkdirSync(join(root, "node_modules"));
  writeFileSync(join(root, "package.json"), '{"name":"x"}');
  writeFileSync(join(root, "package-lock.json"), '{"lockfileVersion":3}');
  writeFileSync(join(root, "node_modules", ".package-lock.json"), '{"packages":{}}');
  writeFileSync(join(root, "src", "b.ts"), "export const b = 1;");
  return root;
}

it("keeps one cache folder while nothing an import resolves against changes", () => {
  const root = checkout();
  const first = moduleCacheDir(root);
  expect(first).toBeDefined();
  // A module's own content is vitest's key, not the folder's.
  writeFileSync(join(root, "src", "b.ts"), "export const b = 2;");
  expect(moduleCacheDir(root)).toBe(first);
});

it("starts a new folder when a source file is renamed, a package.json or the installed packages change", () => {
  const root = checkout();
  const seen = new Set([moduleCacheDir(root)]);
  renameSync(join(root, "src", "b.ts"), join(root, "src", "c.ts"));
  seen.add(moduleCacheDir(root));
  writeFileSync(join(root, "package.json"), '{"name":"x","type":"module"}');
  seen.add(moduleCacheDir(root));
  // `npm install --no-save` rewrites only node_modules' own record.
  writeFileSync(join(root, "node_modules", ".package-lock.json"), '{"packages":{"node_modules/y":{}}}');
  seen.add(moduleCacheDir(root));
  writeFileSync(join(root, "package-lock.json"), '{"lockfileVersion":3,"packages":{}}');
  seen.add(moduleCacheDir(root));
  expect(seen.size).toBe(5);
});

it("is off (undefined) when node_modules cannot be written", () => {
  const root = checkout();
  rmSync(join(root, "node_modules"), { recursive: true });
  // A file where the folder would go: nothing can be made under it.
  writeFileSync(join(root, "node_modules"), "");
  expect(moduleCacheDir(root)).toBeUndefined();
});
