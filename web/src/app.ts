// The HumanAgent page: a person takes the agent's place, sends code actions to an episode and watches
// the state and observations (OpenEnv's /web, plus fork, trajectory download, resume and API keys).
// This file holds the page's state, its actions and their wiring; the parts are modules of their
// own: api-client.ts (the API and its key), editor.ts (CodeMirror), step-view.ts (observation and
// history), display.ts (rich outputs), episodes-panel.ts, files-panel.ts, error-words.ts.
import {
  AuthError,
  type CodeState,
  type CodingEnv,
  type HistoryStep,
  NotFoundError,
  type ResetOpts,
  type StepResult,
} from "../../sdk/src/index.js";
import { api, basePath, forgetKey, keyRemembered, storedKey, storeKey } from "./api-client.js";
import { el, makeScrollRegion } from "./dom.js";
import { CodeEditor } from "./editor.js";
import { EpisodesPanel } from "./episodes-panel.js";
import { InputError, plainError } from "./error-words.js";
import { FilesPanel } from "./files-panel.js";
import { renderHistory as drawHistory, fmtSeconds, renderObservation } from "./step-view.js";

/** localStorage key of the current episode id (the cookie also works, but forks do not set it). */
const EPISODE_KEY = "coding-env:episode";

type Status = "idle" | "ready" | "running" | "error" | "key";
const STATUS_TEXT: Record<Status, string> = {
  idle: "Not initialized",
  ready: "Ready",
  running: "Running",
  error: "Error",
  key: "API key needed",
};

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
const editor = new CodeEditor(el("editor"), () => void doStep());

// ---- rendering ----
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

/** Draws the history; a row's code goes back into the editor when clicked. */
function renderHistory(): void {
  drawHistory(steps, (code) => {
    editor.setCode(code);
    editor.focus();
  });
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
  editor.closeCompletion();
  editor.saveDraft();
  const limitS = episodeId ? stepTimeoutS : undefined;
  await run(
    "Running…",
    async () => {
      if (!env) await resetEpisode();
      const client = env;
      if (!client) return;
      const code = editor.code();
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
  window.addEventListener("pagehide", () => editor.saveDraft());
  document.addEventListener("visibilitychange", () => editor.saveDraft());
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
  if (authRequired && keyRemembered()) el<HTMLInputElement>("api-key-remember").checked = true;
  if (authRequired && !storedKey()) {
    setStatus("key");
    return;
  }
  if (authRequired) el<HTMLInputElement>("api-key").placeholder = "key saved (enter a new one to replace it)";
  await resume();
}

// `data-booted` tells tests (and scripts) that the health check and the resume have finished.
void boot().finally(() => document.body.setAttribute("data-booted", "true"));
