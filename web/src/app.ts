// The HumanAgent page: a person takes the agent's place, sends code actions to an episode and watches
// the state and observations (OpenEnv's /web, plus fork, trajectory download, resume and API keys).
import { acceptCompletion, closeCompletion } from "@codemirror/autocomplete";
import { indentWithTab, insertNewlineAndIndent } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { HighlightStyle, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { EditorState, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { tags } from "@lezer/highlight";
import { basicSetup, EditorView } from "codemirror";
import {
  AuthError,
  type CodeObservation,
  type CodeState,
  CodingEnv,
  type HistoryStep,
  NotFoundError,
  type ResetOpts,
  type StepInfo,
  type StepResult,
} from "../../sdk/src/index.js";
import { renderDisplay } from "./display.js";
import { EpisodesPanel } from "./episodes-panel.js";
import { InputError, plainError } from "./error-words.js";
import { FilesPanel } from "./files-panel.js";

/** localStorage key of the current episode id (the cookie also works, but forks do not set it). */
const EPISODE_KEY = "coding-env:episode";
/** Storage key of the API key: sessionStorage by default, localStorage when "Remember" is ticked. */
const API_KEY_KEY = "coding-env:api-key";
/** localStorage key of the editor's content, so a reload (or a crash of the tab) keeps the draft. */
const DRAFT_KEY = "coding-env:draft";

const SAMPLE_CODE = `# Write Python and press Step (Ctrl/⌘+Enter).
x = 5 + 3
print(f"Result: {x}")
`;

type Status = "idle" | "ready" | "running" | "error" | "key";
const STATUS_TEXT: Record<Status, string> = {
  idle: "Not initialized",
  ready: "Ready",
  running: "Running",
  error: "Error",
  key: "API key needed",
};

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`The page is missing #${id}.`);
  return found as T;
}

/** Where the API lives: the page is served at `<base>/web`, so `<base>` is everything before it. */
const basePath = location.pathname.replace(/\/web(\/.*)?$/, "");

// ---- API key (only when the server requires one) ----
function storedKey(): string | undefined {
  return sessionStorage.getItem(API_KEY_KEY) ?? localStorage.getItem(API_KEY_KEY) ?? undefined;
}
function storeKey(key: string, remember: boolean): void {
  sessionStorage.removeItem(API_KEY_KEY);
  localStorage.removeItem(API_KEY_KEY);
  (remember ? localStorage : sessionStorage).setItem(API_KEY_KEY, key);
  api.setApiKey(key);
}
function forgetKey(): void {
  sessionStorage.removeItem(API_KEY_KEY);
  localStorage.removeItem(API_KEY_KEY);
  api.setApiKey(undefined);
}

/**
 * The page's one connection to the API (the SDK's client, unbound): the tenant's calls go through
 * it, and every episode's client is made from it, so a key entered once applies to all of them.
 * Retries: the SDK's for lost answers (a step is resent with its request_id and replayed, not run
 * twice); a quota or a running step is shown at once instead of being waited out.
 */
const api = new CodingEnv({
  baseUrl: location.origin + basePath,
  ...(storedKey() === undefined ? {} : { apiKey: storedKey() }),
  retry: { maxRetries: 2, initialDelayMs: 1000, retryOnConflict: false, retryOnRateLimit: false },
});

// ---- page state ----
/** The open episode's client (bound to it), or undefined before Reset. */
let env: CodingEnv | undefined;
let episodeId: string | undefined;
let stepCount = 0;
let lastExitCode: number | undefined;
let forkedFrom: string | undefined;
let steps: HistoryStep[] = [];
let busy = false;
let authRequired = false;
/** The current episode's per-step time limit (shown while a step runs). */
let stepTimeoutS: number | undefined;

// ---- editor ----
const runShortcut = Prec.highest(
  keymap.of([
    {
      key: "Mod-Enter",
      run: () => {
        void doStep();
        return true;
      },
    },
    // Python is written line by line: Enter always starts a new line (basicSetup's completion
    // keymap would accept a suggestion instead); a suggestion is accepted with Tab.
    {
      key: "Enter",
      run: (view) => {
        closeCompletion(view);
        return insertNewlineAndIndent(view);
      },
    },
    { key: "Tab", run: acceptCompletion },
  ]),
);
/**
 * CodeMirror's default colours with the ones under 4.5:1 on the (active-line) background darkened:
 * comments, escapes/regexps and invalid tokens (axe's colour-contrast rule found them).
 */
const readableHighlighting = HighlightStyle.define([
  { tag: tags.keyword, color: "#708" },
  { tag: [tags.atom, tags.bool, tags.url, tags.contentSeparator, tags.labelName], color: "#219" },
  { tag: [tags.literal, tags.inserted], color: "#164" },
  { tag: [tags.string, tags.deleted], color: "#a11" },
  { tag: [tags.regexp, tags.escape, tags.special(tags.string)], color: "#a33a00" },
  { tag: tags.definition(tags.variableName), color: "#00c" },
  { tag: tags.local(tags.variableName), color: "#30a" },
  { tag: [tags.typeName, tags.namespace], color: "#085" },
  { tag: tags.className, color: "#167" },
  { tag: [tags.special(tags.variableName), tags.macroName], color: "#256" },
  { tag: tags.definition(tags.propertyName), color: "#00c" },
  { tag: tags.comment, color: "#6b3d00", fontStyle: "italic" },
  { tag: tags.invalid, color: "#c00" },
]);

function savedDraft(): string | undefined {
  try {
    return localStorage.getItem(DRAFT_KEY) ?? undefined;
  } catch {
    return undefined;
  }
}
let draftTimer: ReturnType<typeof setTimeout> | undefined;
/** Saves the draft shortly after typing stops (and at once when the page is hidden or closed). */
function saveDraftSoon(): void {
  if (draftTimer !== undefined) clearTimeout(draftTimer);
  draftTimer = setTimeout(saveDraft, 300);
}
function saveDraft(): void {
  if (draftTimer !== undefined) clearTimeout(draftTimer);
  draftTimer = undefined;
  try {
    localStorage.setItem(DRAFT_KEY, editor.state.doc.toString());
  } catch {
    // Storage full or disabled: the draft is a convenience.
  }
}

const editor = new EditorView({
  doc: savedDraft() ?? SAMPLE_CODE,
  parent: el("editor"),
  extensions: [
    // First: at the same (highest) precedence as the completion keymap inside basicSetup, the
    // earlier extension wins, and Enter must insert a newline even with a suggestion open.
    runShortcut,
    basicSetup,
    python(),
    syntaxHighlighting(readableHighlighting),
    // Wrapped lines: no sideways scrolling on a phone, and nothing hides past the right edge.
    EditorView.lineWrapping,
    keymap.of([indentWithTab]),
    // PEP 8: four spaces per level (CodeMirror's default is two).
    indentUnit.of("    "),
    EditorState.tabSize.of(4),
    EditorView.updateListener.of((update) => {
      if (update.docChanged) saveDraftSoon();
    }),
    EditorView.contentAttributes.of({
      "aria-labelledby": "editor-label",
      "aria-multiline": "true",
      // Explicit, so checkers that do not count contenteditable see the scroller's focusable content.
      tabindex: "0",
    }),
  ],
});

// Tab indents (indentWithTab), so keyboard users leave the editor with Esc then Tab (or Shift+Tab)
// within two seconds. Done here, in the capture phase above CodeMirror, so it holds whatever Escape
// binding (autocomplete, search) handled the key first: the Tab never reaches the editor and the
// browser moves focus as usual.
let escapedAt = 0;
el("editor").addEventListener(
  "keydown",
  (event) => {
    if (event.key === "Escape") {
      escapedAt = Date.now();
    } else if (event.key === "Tab" && Date.now() - escapedAt < 2000) {
      event.stopPropagation();
      escapedAt = 0;
    } else if (event.key !== "Shift") {
      escapedAt = 0;
    }
  },
  { capture: true },
);

function setCode(code: string): void {
  editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: code } });
}

// ---- rendering ----
function fmtReward(reward: number | null | undefined): string {
  if (reward === null || reward === undefined) return "–";
  return String(Number(reward.toFixed(6)));
}
function fmtDuration(ms: number | undefined): string {
  if (ms === undefined) return "–";
  return ms < 1000 ? `${Number(ms.toFixed(1))} ms` : `${Number((ms / 1000).toFixed(2))} s`;
}
function fmtTime(iso: string | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}

function setStatus(status: Status): void {
  const badge = el("st-status");
  badge.textContent = STATUS_TEXT[status];
  badge.dataset.status = status;
}

function renderState(): void {
  el("st-episode").textContent = episodeId ?? "–";
  el("st-steps").textContent = String(stepCount);
  el("st-exit").textContent = lastExitCode === undefined ? "–" : String(lastExitCode);
  el("st-fork-row").hidden = forkedFrom === undefined;
  el("st-forked").textContent = forkedFrom ?? "";
  el<HTMLButtonElement>("fork").disabled = busy || !episodeId;
  el<HTMLButtonElement>("download").disabled = busy || !episodeId;
  el<HTMLButtonElement>("step").disabled = busy;
  el<HTMLButtonElement>("reset").disabled = busy;
  filesPanel.setEnabled(!busy && episodeId !== undefined);
}

function renderPolicy(state: Pick<CodeState, "policy" | "additional_imports" | "step_timeout_s">): void {
  const parts: string[] = [];
  if (state.policy) parts.push(state.policy === "full" ? "full Python" : "OpenEnv allow-list");
  if (state.additional_imports?.length) parts.push(`+ ${state.additional_imports.join(", ")}`);
  if (state.step_timeout_s !== undefined) parts.push(`${state.step_timeout_s} s per step`);
  el("st-policy-row").hidden = parts.length === 0;
  el("st-policy").textContent = parts.join(" · ");
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

function renderObservation(
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

function historyItem(step: HistoryStep): HTMLLIElement {
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
  load.addEventListener("click", () => {
    setCode(step.code);
    editor.focus();
  });
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

/** Output boxes scroll when long; as focusable named regions, keyboard users can scroll them too. */
function makeScrollRegion(pre: HTMLElement, name: string): void {
  pre.tabIndex = 0;
  pre.setAttribute("role", "region");
  pre.setAttribute("aria-label", name);
}

/** Draws the history, newest first. After a step only the new row is added (long episodes stay cheap). */
function renderHistory(): void {
  const list = el("history");
  const newest = steps.at(-1);
  if (
    newest &&
    list.childElementCount === steps.length - 1 &&
    list.firstElementChild?.getAttribute("data-step") === String(newest.step - 1)
  ) {
    list.prepend(historyItem(newest));
  } else {
    list.replaceChildren(...[...steps].reverse().map(historyItem));
  }
  el("hist-empty").hidden = steps.length > 0;
  el("hist-count").textContent = steps.length > 0 ? `(${steps.length})` : "";
}

// ---- errors and busy state ----
function showError(err: unknown): void {
  el("error-text").textContent = plainError(err);
  el("error").hidden = false;
  setStatus("error");
  if (err instanceof AuthError && err.status === 401 && authRequired) {
    // The stored key is wrong or revoked: drop it so the page does not keep sending it.
    forgetKey();
    el<HTMLInputElement>("api-key").placeholder = "ce_…";
    el("auth").hidden = false;
    el("api-key").focus();
  }
}
function clearError(): void {
  el("error").hidden = true;
  el("error-text").textContent = "";
}

let busyTimer: ReturnType<typeof setInterval> | undefined;
/**
 * Busy state. `limitS` (a step's time limit) is shown next to the elapsed time, and the output on
 * screen is marked as the previous step's until the new one arrives.
 */
function setBusy(on: boolean, label = "Working…", step?: { limitS: number | undefined }): void {
  busy = on;
  document.body.setAttribute("aria-busy", String(on));
  el("observation").setAttribute("aria-busy", String(on));
  el("busy").hidden = !on;
  const stale = on && step !== undefined && !el("obs-body").hidden;
  const limitS = step?.limitS;
  el("observation").classList.toggle("stale", stale);
  el("obs-stale").hidden = !stale;
  if (busyTimer !== undefined) clearInterval(busyTimer);
  busyTimer = undefined;
  if (on) {
    const started = performance.now();
    const limit = limitS === undefined ? "" : ` (limit ${fmtSeconds(limitS)})`;
    el("busy-text").textContent = `${label}${limit}`;
    busyTimer = setInterval(() => {
      el("busy-text").textContent = `${label} ${Math.floor((performance.now() - started) / 1000)} s${limit}`;
    }, 1000);
    setStatus("running");
  }
  renderState();
}
function fmtSeconds(s: number): string {
  return `${Number(s.toFixed(2))} s`;
}

/** Runs one API action with the busy state on and errors shown in plain words. */
async function run(
  label: string,
  action: () => Promise<void>,
  step?: { limitS: number | undefined },
): Promise<void> {
  if (busy) return;
  clearError();
  setBusy(true, label, step);
  try {
    await action();
    setBusy(false);
    setStatus(episodeId ? "ready" : "idle");
  } catch (err) {
    setBusy(false);
    if (err instanceof NotFoundError && err.code === "episode_not_found") forgetEpisode();
    showError(err);
  }
}

// ---- episode ----
/** Makes `client` (bound to the episode of `result`) the open episode. */
function adopt(client: CodingEnv, result: StepResult): void {
  env = client;
  episodeId = result.episode_id;
  stepCount = result.step_count;
  lastExitCode = result.observation.exit_code;
  localStorage.setItem(EPISODE_KEY, result.episode_id);
}

function forgetEpisode(): void {
  env = undefined;
  episodeId = undefined;
  stepTimeoutS = undefined;
  stepCount = 0;
  lastExitCode = undefined;
  forkedFrom = undefined;
  steps = [];
  localStorage.removeItem(EPISODE_KEY);
  renderState();
  renderHistory();
  void filesPanel.refreshQuietly();
}

function readResetOpts(): ResetOpts {
  const policy = el<HTMLSelectElement>("opt-policy").value;
  const imports = el<HTMLInputElement>("opt-imports")
    .value.split(/[\s,]+/)
    .filter((name) => name !== "");
  const timeoutText = el<HTMLInputElement>("opt-timeout").value.trim();
  let stepTimeout: number | undefined;
  if (timeoutText !== "") {
    stepTimeout = Number(timeoutText);
    if (!Number.isFinite(stepTimeout) || stepTimeout <= 0) {
      throw new InputError("The step timeout must be a number of seconds greater than 0.");
    }
  }
  return {
    ...(policy === "full" || policy === "openenv" ? { policy } : {}),
    ...(imports.length > 0 ? { additionalImports: imports } : {}),
    ...(stepTimeout === undefined ? {} : { stepTimeoutS: stepTimeout }),
  };
}

async function resetEpisode(): Promise<void> {
  const opts = readResetOpts();
  const client = api.withEpisode();
  const result = await client.reset(opts);
  forkedFrom = undefined;
  steps = [];
  adopt(client, result);
  renderObservation(result.observation, result, `New episode ${result.episode_id} started.`);
  renderHistory();
  await refreshState();
  void filesPanel.refreshQuietly();
  await episodesPanel.reloadQuietly();
}

async function refreshState(): Promise<void> {
  if (!env) return;
  try {
    // The SDK also learns the episode's step limit from it (a slow step is waited for long enough).
    const state = await env.state();
    renderPolicy(state);
    stepTimeoutS = state.step_timeout_s;
  } catch {
    // The policy line is a nicety; the step itself already succeeded.
  }
}

/** The whole history, oldest first, following the pages of a long episode. */
async function allSteps(client: CodingEnv): Promise<HistoryStep[]> {
  const all: HistoryStep[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.history(cursor === undefined ? {} : { cursor });
    all.push(...page.steps);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
  return all;
}

function newRequestId(): string {
  // randomUUID exists only in secure contexts (https, localhost); the fallback is unique enough for retries.
  if (typeof crypto.randomUUID === "function") return `web-${crypto.randomUUID()}`;
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Brings the new observation into view when it is off screen (the stacked phone layout). */
function revealObservation(): void {
  const card = el("obs-card");
  const box = card.getBoundingClientRect();
  if (box.top < 0 || box.top > window.innerHeight - 80) card.scrollIntoView({ block: "start" });
}

async function doStep(): Promise<void> {
  // The suggestion popup would otherwise stay open over the output (and take the next Enter).
  closeCompletion(editor);
  saveDraft();
  const limitS = episodeId ? stepTimeoutS : undefined;
  await run(
    "Running…",
    async () => {
      if (!env) await resetEpisode();
      const client = env;
      if (!client) return;
      const code = editor.state.doc.toString();
      const startedAt = new Date().toISOString();
      // If the answer is lost on the way back (the step may have run), the SDK sends the step again
      // with this request_id and the API answers from its idempotency record: the code runs once.
      const result = await client.step(code, { requestId: newRequestId() });
      adopt(client, result);
      episodesPanel.noteStep(result.episode_id, result.step_count);
      steps.push({
        step: result.step_count,
        code,
        observation: result.observation,
        reward: result.reward,
        done: result.done,
        ...(result.metadata ? { metadata: result.metadata } : {}),
        ...(result.info ? { info: result.info } : {}),
        started_at: startedAt,
        duration_ms: result.info?.duration_ms ?? 0,
        ...(result.display ? { display: result.display } : {}),
      });
      renderObservation(result.observation, result);
      renderHistory();
      revealObservation();
    },
    { limitS },
  );
  // A step may have written, changed or deleted files.
  void filesPanel.refreshQuietly();
}

async function doFork(): Promise<void> {
  await run("Forking…", async () => {
    const source = env;
    if (!source) return;
    const forked = await source.fork();
    const result = forked.forkResult;
    if (!result) return;
    adopt(forked, result);
    forkedFrom = result.forked_from ?? source.episodeId;
    steps = await allSteps(forked);
    renderObservation(
      result.observation,
      result,
      `Now in a copy of episode ${forkedFrom}: same variables, files and history; the original is unchanged.`,
    );
    renderHistory();
    await refreshState();
    void filesPanel.refreshQuietly();
    await episodesPanel.reloadQuietly();
  });
}

async function doDownload(): Promise<void> {
  await run("Preparing download…", async () => {
    const client = env;
    const id = episodeId;
    if (!client || !id) return;
    // Streamed by the server and read into one Blob: the download starts when it is complete.
    const blob = await new Response(await client.exportHistoryJsonl()).blob();
    const url = URL.createObjectURL(new Blob([blob], { type: "application/x-ndjson" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = `${id}.jsonl`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });
}

/** Loads an episode (by id, or the cookie's when undefined) with its history; false when it is gone. */
async function loadEpisode(id: string | undefined): Promise<boolean> {
  let state: CodeState | undefined;
  let client: CodingEnv;
  if (id === undefined) {
    // `GET /state` without an episode: the one the reset cookie names, if it is still alive.
    state = await api.cookieState();
    if (!state) return false;
    client = api.withEpisode(state.episode_id);
  } else {
    client = api.withEpisode(id);
    try {
      state = await client.state();
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }
  const history = await allSteps(client);
  env = client;
  episodeId = state.episode_id;
  stepCount = state.step_count;
  lastExitCode = state.step_count > 0 ? state.last_exit_code : undefined;
  forkedFrom = state.forked_from;
  steps = history;
  localStorage.setItem(EPISODE_KEY, state.episode_id);
  renderPolicy(state);
  stepTimeoutS = state.step_timeout_s;
  const last = steps.at(-1);
  if (last) {
    renderObservation(last.observation, last, `Resumed episode ${state.episode_id} (last step shown).`);
  } else {
    renderObservation(
      { stdout: "", stderr: "", exit_code: 0 },
      { reward: 0, done: false },
      `Resumed episode ${state.episode_id} (no steps yet).`,
    );
  }
  renderHistory();
  void filesPanel.refreshQuietly();
  return true;
}

/** Resume after reload: the remembered episode first, then the cookie's. */
async function resume(): Promise<void> {
  await run("Loading episode…", async () => {
    const remembered = localStorage.getItem(EPISODE_KEY) ?? undefined;
    if (remembered && (await loadEpisode(remembered))) return;
    if (remembered) localStorage.removeItem(EPISODE_KEY);
    await loadEpisode(undefined);
  });
  await episodesPanel.reloadQuietly();
}

const episodesPanel = new EpisodesPanel({
  api,
  list: el("episodes"),
  empty: el("episodes-empty"),
  more: el<HTMLButtonElement>("episodes-more"),
  refresh: el<HTMLButtonElement>("episodes-refresh"),
  currentId: () => episodeId,
  run,
  onOpen: async (id) => {
    await run("Loading episode…", async () => {
      if (!(await loadEpisode(id))) {
        throw new NotFoundError("", { status: 404, code: "episode_not_found" });
      }
    });
    episodesPanel.render();
  },
  onDeleted: (id) => {
    if (id !== episodeId) return;
    forgetEpisode();
    renderObservation(undefined, undefined);
  },
});

const filesPanel = new FilesPanel({
  list: el("files"),
  empty: el("files-empty"),
  upload: el<HTMLInputElement>("file-upload"),
  current: () => env,
  run,
  onUploaded: async (written) => {
    // An upload is committed like a step: the count grows and the history gets its row.
    stepCount = written.step_count;
    if (env) steps = await allSteps(env);
    renderHistory();
    episodesPanel.noteStep(written.episode_id, written.step_count);
  },
});

// ---- wiring ----
function wire(): void {
  el("step").addEventListener("click", () => void doStep());
  el("reset").addEventListener("click", () => void run("Resetting…", resetEpisode));
  el("fork").addEventListener("click", () => void doFork());
  el("download").addEventListener("click", () => void doDownload());
  // The draft is saved on a short timer; a reload or closed tab must not lose the last keystrokes.
  window.addEventListener("pagehide", saveDraft);
  document.addEventListener("visibilitychange", saveDraft);
  el("error-dismiss").addEventListener("click", () => {
    clearError();
    setStatus(episodeId ? "ready" : "idle");
  });
  // Ctrl/Cmd+Enter steps from anywhere on the page (the editor has its own binding).
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
      event.preventDefault();
      void doStep();
    }
  });
  for (const link of document.querySelectorAll<HTMLAnchorElement>("a[data-href]")) {
    link.href = basePath + (link.dataset.href ?? "");
  }
  el("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = el<HTMLInputElement>("api-key").value.trim();
    if (!key) return;
    storeKey(key, el<HTMLInputElement>("api-key-remember").checked);
    el<HTMLInputElement>("api-key").value = "";
    el<HTMLInputElement>("api-key").placeholder = "key saved (enter a new one to replace it)";
    clearError();
    void resume();
  });
  el("api-key-forget").addEventListener("click", () => {
    forgetKey();
    el<HTMLInputElement>("api-key").placeholder = "ce_…";
    setStatus("key");
  });
}

async function boot(): Promise<void> {
  wire();
  makeScrollRegion(el("obs-stdout"), "Current stdout");
  makeScrollRegion(el("obs-stderr"), "Current stderr");
  renderState();
  renderHistory();
  try {
    const health = await api.health();
    authRequired = health.auth_required === true;
  } catch (err) {
    showError(err);
    return;
  }
  el("auth").hidden = !authRequired;
  if (authRequired && localStorage.getItem(API_KEY_KEY))
    el<HTMLInputElement>("api-key-remember").checked = true;
  if (authRequired && !storedKey()) {
    setStatus("key");
    return;
  }
  if (authRequired) el<HTMLInputElement>("api-key").placeholder = "key saved (enter a new one to replace it)";
  await resume();
}

// `data-booted` tells tests (and scripts) that the health check and the resume have finished.
void boot().finally(() => document.body.setAttribute("data-booted", "true"));
