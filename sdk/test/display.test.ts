import { describe, expect, it } from "vitest";
import { JUPYTER_DISPLAY, StepResult } from "../src/index.js";

function result(stdout: string, stderr: string, exitCode: number, timedOut = false): StepResult {
  return new StepResult({
    observation: { stdout, stderr, exit_code: exitCode },
    reward: exitCode === 0 ? 0.1 : -0.1,
    done: false,
    episode_id: "ep_view",
    step_count: 3,
    info: {
      duration_ms: 1.2,
      timed_out: timedOut,
      stdout_truncated: false,
      stderr_truncated: false,
      dropped_variables: [],
    },
  });
}

describe("StepResult in Jupyter (Deno kernel display protocol)", () => {
  it("uses Symbol.for('Jupyter.display'), the key Deno's kernel calls", () => {
    expect(JUPYTER_DISPLAY).toBe(Symbol.for("Jupyter.display"));
    expect(
      typeof (result("", "", 0) as unknown as Record<symbol, unknown>)[Symbol.for("Jupyter.display")],
    ).toBe("function");
  });

  it("shows stdout, exit code, reward and step as HTML with a plain-text fallback", () => {
    const bundle = result("Result: 8", "", 0)[JUPYTER_DISPLAY]();

    expect(Object.keys(bundle).sort()).toEqual(["text/html", "text/plain"]);
    expect(bundle["text/html"]).toContain("exit code 0");
    expect(bundle["text/html"]).toContain("reward 0.1");
    expect(bundle["text/html"]).toContain("Result: 8");
    expect(bundle["text/html"]).not.toContain("stderr");
    expect(bundle["text/plain"]).toBe("exit_code=0 reward=0.1 step=3\nstdout: Result: 8");
  });

  it("shows stderr and flags when the cell failed or timed out", () => {
    const bundle = result("", "Traceback...\nTimeoutError", 1, true)[JUPYTER_DISPLAY]();

    expect(bundle["text/html"]).toContain("exit code 1");
    expect(bundle["text/html"]).toContain("<th");
    expect(bundle["text/html"]).toContain("TimeoutError");
    expect(bundle["text/html"]).toContain("timed out");
    expect(bundle["text/html"]).toContain("(empty)");
    expect(bundle["text/plain"]).toContain("stderr: Traceback...");
  });

  it("escapes HTML in user output", () => {
    const bundle = result("<script>alert('x')</script> & more", "", 0)[JUPYTER_DISPLAY]();

    expect(bundle["text/html"]).not.toContain("<script>");
    expect(bundle["text/html"]).toContain("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more");
  });

  it("serializes back to the wire body with JSON.stringify", () => {
    const parsed = JSON.parse(JSON.stringify(result("2", "", 0)));

    expect(parsed).toMatchObject({ observation: { stdout: "2" }, episode_id: "ep_view", step_count: 3 });
    expect(Object.keys(parsed)).not.toContain("ok");
  });
});
