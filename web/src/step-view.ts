// How steps are shown: the current observation (exit code, reward, outputs, display bundles and
// notices in plain words) and the history, newest first.
import type { CodeObservation, HistoryStep, StepInfo, StepResult } from "../../sdk/src/index.js";
import { renderDisplay } from "./display.js";
import { el, makeScrollRegion } from "./dom.js";

export function fmtReward(reward: number | null | undefined): string {
  if (reward === null || reward === undefined) return "–";
  return String(Number(reward.toFixed(6)));
}
export function fmtDuration(ms: number | undefined): string {
  if (ms === undefined) return "–";
  return ms < 1000 ? `${Number(ms.toFixed(1))} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}
export function fmtTime(iso: string | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}
export function fmtSeconds(s: number): string {
  return `${Number(s.toFixed(2))} s`;
}

/** Human sentences for the extras of a step: truncation, dropped variables, timeouts, safety. */
function notices(info: StepInfo | undefined, metadata: Record<string, unknown> | undefined): string[] {
  const out: string[] = [];
  if (info?.timed_out) {
    out.push("The step hit its time limit and was stopped; the episode's variables are as before this step.");
  }
  if (info?.stdout_truncated) out.push("stdout was too long and was truncated.");
  if (info?.stderr_truncated) out.push("stderr was too long and was truncated.");
  const dropped = info?.dropped_variables ?? [];
  if (dropped.length > 0) {
    const names = dropped.map((v) => `${v.name} (${v.type})`).join(", ");
    out.push(`These variables cannot be saved between steps and were dropped: ${names}.`);
  }
  const safety = metadata?.safety_violation;
  if (typeof safety === "string" && safety) {
    out.push(`The safety rule matched “${safety}”, so the reward includes −1.0.`);
  }
  return out;
}

/** Shows `observation` as the current one (none: the empty card), with `note` above its notices. */
export function renderObservation(
  observation: CodeObservation | undefined,
  extra:
    | {
        reward: number | null;
        done: boolean;
        info?: StepInfo;
        metadata?: Record<string, unknown>;
        display?: StepResult["display"];
      }
    | undefined,
  note?: string,
): void {
  el("obs-empty").hidden = observation !== undefined;
  el("obs-body").hidden = observation === undefined;
  if (!observation || !extra) return;
  const exit = el("obs-exit");
  exit.textContent = String(observation.exit_code);
  exit.className = observation.exit_code === 0 ? "ok" : "bad";
  el("obs-reward").textContent = fmtReward(extra.reward);
  el("obs-done").textContent = extra.done ? "yes" : "no";
  el("obs-duration-wrap").hidden = extra.info?.duration_ms === undefined;
  el("obs-duration").textContent = fmtDuration(extra.info?.duration_ms);
  fillOutput(el("obs-stdout"), observation.stdout);
  fillOutput(el("obs-stderr"), observation.stderr);
  renderDisplay(el("obs-display"), extra.display, "Current");
  const list = el("obs-notices");
  list.replaceChildren();
  for (const text of [...(note ? [note] : []), ...notices(extra.info, extra.metadata)]) {
    const li = document.createElement("li");
    li.textContent = text;
    list.append(li);
  }
}

function fillOutput(pre: HTMLElement, text: string): void {
  pre.textContent = text === "" ? "(empty)" : text;
  pre.classList.toggle("none", text === "");
}

/** The files an upload wrote (its history row has no code, and `info.files_written`). */
function uploadedFiles(step: HistoryStep): string[] {
  return (step.info?.files_written ?? []).map((file) => file.path);
}

/** One history row; clicking it calls `onLoadCode` with the step's code. */
function historyItem(step: HistoryStep, onLoadCode: (code: string) => void): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "h-item";
  li.dataset.step = String(step.step);
  li.dataset.exit = String(step.observation.exit_code);

  const load = document.createElement("button");
  load.type = "button";
  load.className = "h-load";
  load.title = "Load this code into the editor";
  const head = document.createElement("span");
  head.className = "h-head";
  const num = document.createElement("span");
  num.className = "h-num";
  num.textContent = `Step ${step.step}`;
  const meta = document.createElement("span");
  meta.className = "h-meta";
  const duration = step.duration_ms ?? step.info?.duration_ms;
  meta.textContent = [
    `exit ${step.observation.exit_code}`,
    `reward ${fmtReward(step.reward)}`,
    fmtDuration(duration),
    fmtTime(step.started_at),
  ]
    .filter(Boolean)
    .join(" · ");
  head.append(num, meta);
  // A span, not a <pre>: a button may hold only phrasing content. CSS keeps the code's whitespace.
  const code = document.createElement("span");
  code.className = "h-code";
  code.textContent = step.code;
  const uploaded = uploadedFiles(step);
  if (step.code === "" && uploaded.length > 0) {
    code.classList.add("h-upload");
    code.textContent = `(uploaded ${uploaded.join(", ")})`;
  }
  const action = document.createElement("span");
  action.className = "visually-hidden";
  action.textContent = " (load this code into the editor)";
  load.append(head, code, action);
  load.addEventListener("click", () => onLoadCode(step.code));
  li.append(load);

  for (const [label, text, cls] of [
    ["stdout", step.observation.stdout, "out"],
    ["stderr", step.observation.stderr, "out err"],
  ] as const) {
    if (text === "") continue;
    const wrap = document.createElement("div");
    wrap.className = "h-out";
    const tag = document.createElement("span");
    tag.className = "h-tag";
    tag.textContent = label;
    const pre = document.createElement("pre");
    pre.className = cls;
    pre.textContent = text;
    makeScrollRegion(pre, `Step ${step.step} ${label}`);
    wrap.append(tag, pre);
    li.append(wrap);
  }
  if (step.display?.length) {
    const shown = document.createElement("div");
    shown.className = "h-display display";
    renderDisplay(shown, step.display, `Step ${step.step}`);
    li.append(shown);
  }
  return li;
}

/** Draws the history, newest first. After a step only the new row is added (long episodes stay cheap). */
export function renderHistory(steps: readonly HistoryStep[], onLoadCode: (code: string) => void): void {
  const list = el("history");
  const newest = steps.at(-1);
  const item = (step: HistoryStep) => historyItem(step, onLoadCode);
  if (
    newest &&
    list.childElementCount === steps.length - 1 &&
    list.firstElementChild?.getAttribute("data-step") === String(newest.step - 1)
  ) {
    list.prepend(item(newest));
  } else {
    list.replaceChildren(...[...steps].reverse().map(item));
  }
  el("hist-empty").hidden = steps.length > 0;
  el("hist-count").textContent = steps.length > 0 ? `(${steps.length})` : "";
}
