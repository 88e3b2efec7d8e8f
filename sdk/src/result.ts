import type { CodeObservation, StepInfo, StepResultData } from "./types.js";

/**
 * The symbol Deno's Jupyter kernel (and other JS kernels following the same convention) calls to
 * get a rich MIME bundle for a cell's value. Equal to `Deno.jupyter.$display`.
 *
 * @example
 * ```ts
 * const bundle = result[JUPYTER_DISPLAY](); // { "text/html": "...", "text/plain": "..." }
 * ```
 */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for("Jupyter.display");

/** A Jupyter MIME bundle: MIME type → content. */
export type MimeBundle = Record<string, string>;

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch] ?? ch);
}

/**
 * The result of `reset()`, `step()` and `fork()`: the wire body of `docs/API.md` (OpenEnv's
 * `observation`, `reward`, `done` plus `episode_id`, `step_count`, `info`, ...), with a rich view
 * in Jupyter. `JSON.stringify(result)` gives the wire body back.
 *
 * @example
 * ```ts
 * const result = await env.step("print('hi')\n1+1");
 * result.observation.stdout;    // "hi\n2"
 * result.observation.exit_code; // 0
 * result.reward;                // 0.1
 * result; // as a notebook cell's last value (Deno kernel): a small table of stdout, stderr, exit code, reward
 * ```
 */
export class StepResult implements StepResultData {
  [extra: string]: unknown;
  declare observation: CodeObservation;
  declare reward: number | null;
  declare done: boolean;
  declare metadata?: Record<string, unknown>;
  declare episode_id: string;
  declare step_count: number;
  declare info?: StepInfo;
  declare forked_from?: string;
  /** Rich outputs of the step (display(), matplotlib figures): Jupyter MIME bundles, absent when none. */
  declare display?: Array<{ data: MimeBundle; metadata: Record<string, unknown> }>;

  /**
   * Wraps a wire body. Unknown extra fields are kept as they are.
   *
   * @example
   * ```ts
   * const result = new StepResult({ observation: { stdout: "2", stderr: "", exit_code: 0 },
   *   reward: 0.1, done: false, episode_id: "ep_1", step_count: 1 });
   * ```
   */
  constructor(data: StepResultData) {
    Object.assign(this, data);
  }

  /**
   * `true` when the cell ran without error (`exit_code` 0).
   *
   * @example
   * ```ts
   * if (!(await env.step(code)).ok) console.log("cell failed");
   * ```
   */
  get ok(): boolean {
    return this.observation.exit_code === 0;
  }

  /**
   * The wire body (what `JSON.stringify` uses).
   *
   * @example
   * ```ts
   * fs.appendFileSync("trajectory.jsonl", `${JSON.stringify(result)}\n`);
   * ```
   */
  toJSON(): StepResultData {
    return { ...this } as StepResultData;
  }

  /**
   * The rich view Deno's Jupyter kernel shows for a cell whose value is this result: a small HTML
   * table of stdout, stderr, exit code and reward, with a plain-text fallback.
   *
   * @example
   * ```ts
   * const bundle = result[Symbol.for("Jupyter.display")]();
   * bundle["text/html"]; // "<div class=\"coding-env-step\">..."
   * ```
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    const { stdout, stderr, exit_code } = this.observation;
    const reward = this.reward === null ? "null" : String(this.reward);
    const status = exit_code === 0 ? "#1a7f37" : "#cf222e";
    const pre = (text: string) =>
      `<pre style="margin:0;white-space:pre-wrap">${text === "" ? "<i>(empty)</i>" : escapeHtml(text)}</pre>`;
    const flags: string[] = [];
    if (this.info?.timed_out) flags.push("timed out");
    if (this.info?.stdout_truncated) flags.push("stdout truncated");
    if (this.info?.stderr_truncated) flags.push("stderr truncated");
    const html = [
      `<div class="coding-env-step" style="font-family:sans-serif;font-size:13px">`,
      `<div><b style="color:${status}">exit code ${exit_code}</b> · reward ${escapeHtml(reward)}`,
      ` · step ${this.step_count} · <code>${escapeHtml(String(this.episode_id))}</code>`,
      flags.length > 0 ? ` · ${escapeHtml(flags.join(", "))}` : "",
      `</div>`,
      `<table style="border-collapse:collapse;text-align:left">`,
      `<tr><th style="vertical-align:top;padding-right:8px">stdout</th><td>${pre(stdout)}</td></tr>`,
      stderr === ""
        ? ""
        : `<tr><th style="vertical-align:top;padding-right:8px">stderr</th><td>${pre(stderr)}</td></tr>`,
      `</table></div>`,
    ].join("");
    const plain = [
      `exit_code=${exit_code} reward=${reward} step=${this.step_count}`,
      `stdout: ${stdout}`,
      ...(stderr === "" ? [] : [`stderr: ${stderr}`]),
    ].join("\n");
    return { "text/html": html, "text/plain": plain };
  }
}
