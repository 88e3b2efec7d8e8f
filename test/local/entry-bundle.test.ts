// The local stack's process entries run as esbuild bundles (functions/src/local/entry-bundle.ts):
// built once per content, rebuilt when a file that went in changes (a package's too), packages inside
// the bundle, and each module still sees its own import.meta.url (paths found from it are the
// source's, as under tsx).
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { bundledEntry } from "../../functions/src/local/entry-bundle.js";

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), "coding-env-entry-bundle-"));
// A repository of two modules and two packages: this repository's zod (a symbolic link, as a
// second checkout may share node_modules) and a CommonJS package of its own.
mkdirSync(join(root, "node_modules", "offset-pkg"), { recursive: true });
symlinkSync(
  resolve(import.meta.dirname, "..", "..", "node_modules", "zod"),
  join(root, "node_modules", "zod"),
);
const write = (file: string, text: string) => writeFileSync(join(root, file), text);
const pkg = (offset: number) => `exports.offset = ${offset};\n`;
write("node_modules/offset-pkg/package.json", '{ "name": "offset-pkg", "main": "index.js" }\n');
write("node_modules/offset-pkg/index.js", pkg(1));
const lib = (answer: number) =>
  `export const where: string = import.meta.url;\nexport const dir: string = import.meta.dirname;\nexport const answer = ${answer};\n`;
write("lib.ts", lib(41));
write(
  "main.ts",
  [
    'import { z } from "zod";',
    'import { offset } from "offset-pkg";',
    'import { answer, dir, where } from "./lib.ts";',
    "const n: number = z.number().parse(answer + offset);",
    "console.log(JSON.stringify({ n, where, dir, main: import.meta.url }));",
  ].join("\n"),
);
const entry = join(root, "main.ts");

afterAll(() => rmSync(root, { recursive: true, force: true }));

async function runBundle(bundle: string): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [bundle]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe("entry bundles", () => {
  it("run the entry with its modules' own import.meta, its packages inside", async () => {
    const bundle = await bundledEntry(entry, root);
    expect(bundle.startsWith(join(root, "node_modules", ".cache", "coding-env"))).toBe(true);
    expect(await runBundle(bundle)).toEqual({
      n: 42,
      where: pathToFileURL(join(root, "lib.ts")).href,
      dir: root,
      main: pathToFileURL(entry).href,
    });
    const text = readFileSync(bundle, "utf8");
    expect(text).not.toMatch(/from\s*"(zod|offset-pkg)"/); // inlined, not imported
  });

  it("are built once per content: the same file while nothing changed, a new one after a change", async () => {
    const first = await bundledEntry(entry, root);
    const built = statSync(first);
    // Started together: one check, one answer.
    const [a, b] = await Promise.all([bundledEntry(entry, root), bundledEntry(entry, root)]);
    expect([a, b]).toEqual([first, first]);
    const again = statSync(first);
    expect([again.ino, again.mtimeMs]).toEqual([built.ino, built.mtimeMs]); // not written again
    write("lib.ts", lib(1));
    const changed = await bundledEntry(entry, root);
    expect(changed).not.toBe(first);
    expect(await runBundle(changed)).toMatchObject({ n: 2 });
    // Back to the first content: its bundle is still there, and used as it is.
    write("lib.ts", lib(41));
    expect(await bundledEntry(entry, root)).toBe(first);
    expect(statSync(first).ino).toBe(built.ino);
  });

  it("are built again after a package's file changed", async () => {
    const first = await bundledEntry(entry, root);
    write("node_modules/offset-pkg/index.js", pkg(2));
    const changed = await bundledEntry(entry, root);
    expect(changed).not.toBe(first);
    expect(await runBundle(changed)).toMatchObject({ n: 43 });
  });
});
