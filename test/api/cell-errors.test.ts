// Nothing a cell does becomes a 5xx (issue 10 point 8, issue 11 point 5): odd exit statuses, a
// killed worker, huge or unencodable output, exceptions Python itself treats specially. Each step
// goes through the whole stack (API, store, executor, worker) and must answer 200 with its
// observation, or a 4xx in the one error shape; the episode stays usable afterwards.
import { describe, expect, inject, it } from "vitest";
import { Episode, errorCode } from "../helpers/api.js";

const baseUrl = inject("baseUrl");

/** [what, code, expected exit code (undefined: any in 0..255)] */
const CELLS: Array<[string, string, number | undefined]> = [
  ["SystemExit(2**60)", "raise SystemExit(2**60)", 1],
  ["SystemExit(-1)", "raise SystemExit(-1)", undefined],
  ["SystemExit(256)", "raise SystemExit(256)", undefined],
  ["SystemExit(True)", "raise SystemExit(True)", 1],
  ["SystemExit('bye')", "raise SystemExit('bye')", 1],
  ["sys.exit(None)", "import sys\nsys.exit(None)", 0],
  ["os._exit(300)", "import os\nos._exit(300)", undefined],
  ["SIGKILL of the worker", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", undefined],
  ["SIGSEGV of the worker", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", undefined],
  ["KeyboardInterrupt", "raise KeyboardInterrupt", 1],
  ["BaseException", "raise BaseException('x')", 1],
  ["MemoryError", "raise MemoryError", 1],
  ["unbounded recursion", "def f():\n    return f()\nf()", 1],
  [
    "an exception whose str() raises",
    "class E(Exception):\n    def __str__(self):\n        raise ValueError\nraise E()",
    1,
  ],
  ["20 MB of stdout", "print('x' * 20_000_000)", 0],
  ["1 MiB of NUL (6x larger as JSON)", "print('\\x00' * 2**20)", 0],
  ["5 MiB of control characters on stderr", "import sys\nsys.stderr.write('\\x01' * 5 * 2**20)", 0],
  ["lone surrogates", "print('\\ud800' * 1000)", undefined],
  [
    "bytes that are not UTF-8",
    "import os, sys\nsys.stdout.flush()\nos.write(1, b'\\xff\\xfe\\xc0' * 1000)",
    undefined,
  ],
  ["200k lines", "for i in range(200_000):\n    print(i)", 0],
];

describe("nothing a cell does becomes a 5xx", () => {
  it.each(CELLS)("%s: 200 with a valid exit code, episode still usable", async (_what, code, exitCode) => {
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    const r = await ep.step(code);
    expect(r.status, r.text.slice(0, 300)).toBe(200);
    const exit = r.body.observation.exit_code;
    expect(Number.isInteger(exit) && exit >= 0 && exit <= 255, String(exit)).toBe(true);
    if (exitCode !== undefined) expect(exit).toBe(exitCode);
    const after = await ep.run("print('alive')");
    expect(after.observation.stdout).toBe("alive\n");
  });

  it("state that is too large after the step is a 413 in the one shape, never a 5xx", async () => {
    const ep = await Episode.reset(baseUrl, { policy: "full" });
    const r = await ep.step("import os\nhuge = os.urandom(8 * 2**20)");
    expect(r.status).toBe(413);
    expect(errorCode(r)).toBe("state_too_large");
    expect((await ep.run("'huge' in globals()")).observation.stdout).toBe("false");
  });
});
