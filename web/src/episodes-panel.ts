// The "Your episodes" card: the tenant's live episodes (GET /episodes, in pages) with Open and
// Delete, so a person sees what holds the active-episode quota and can free a slot before Reset
// or Fork are refused.
import type { CodingEnv, EpisodeSummary } from "../../sdk/src/index.js";

export interface EpisodesPanelOpts {
  /** The page's client (any episode binding: the list is the tenant's). */
  readonly api: CodingEnv;
  /** The list's container elements (from index.html). */
  readonly list: HTMLElement;
  readonly empty: HTMLElement;
  readonly more: HTMLButtonElement;
  readonly refresh: HTMLButtonElement;
  /** The episode the page is in (marked in the list). */
  readonly currentId: () => string | undefined;
  /** Runs an action with the page's busy state and error display. */
  readonly run: (label: string, action: () => Promise<void>) => Promise<void>;
  readonly onOpen: (id: string) => Promise<void>;
  readonly onDeleted: (id: string) => void;
}

/** Episodes per "Load more". */
const PAGE_SIZE = 20;

function fmtWhen(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export class EpisodesPanel {
  private nextCursor: string | null = null;
  private rows: EpisodeSummary[] = [];

  constructor(private readonly opts: EpisodesPanelOpts) {
    opts.more.addEventListener("click", () => void opts.run("Loading episodes…", () => this.loadMore()));
    opts.refresh.addEventListener("click", () => void opts.run("Loading episodes…", () => this.reload()));
  }

  /** The first page again (after reset, fork, delete or a key change). */
  async reload(): Promise<void> {
    const page = await this.opts.api.listEpisodes({ limit: PAGE_SIZE });
    this.rows = page.episodes;
    this.nextCursor = page.next_cursor;
    this.render();
  }

  /** Reloads, but a failure only leaves the list as it was (it is secondary to the action just done). */
  async reloadQuietly(): Promise<void> {
    try {
      await this.reload();
    } catch {
      // The list is informative; the action that triggered the refresh already succeeded or failed.
    }
  }

  async loadMore(): Promise<void> {
    if (this.nextCursor === null) return;
    const page = await this.opts.api.listEpisodes({ limit: PAGE_SIZE, cursor: this.nextCursor });
    this.rows.push(...page.episodes);
    this.nextCursor = page.next_cursor;
    this.render();
  }

  /** A step changed an episode: its row shows the new count without reloading the list. */
  noteStep(episodeId: string, stepCount: number): void {
    const row = this.rows.find((r) => r.episode_id === episodeId);
    if (!row) return;
    row.step_count = stepCount;
    row.updated_at = new Date().toISOString();
    this.render();
  }

  render(): void {
    const current = this.opts.currentId();
    this.opts.list.replaceChildren(...this.rows.map((row) => this.item(row, row.episode_id === current)));
    this.opts.empty.hidden = this.rows.length > 0;
    this.opts.more.hidden = this.nextCursor === null;
  }

  private item(row: EpisodeSummary, isCurrent: boolean): HTMLLIElement {
    const li = document.createElement("li");
    li.className = "ep-item";
    li.dataset.episode = row.episode_id;
    if (isCurrent) li.dataset.current = "true";
    const id = document.createElement("span");
    id.className = "mono ep-id";
    id.textContent = row.episode_id;
    const meta = document.createElement("span");
    meta.className = "ep-meta";
    meta.textContent = [
      `${row.step_count} step${row.step_count === 1 ? "" : "s"}`,
      `updated ${fmtWhen(row.updated_at)}`,
      row.forked_from ? `fork of ${row.forked_from}` : "",
      isCurrent ? "(open)" : "",
    ]
      .filter(Boolean)
      .join(" · ");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "secondary small ep-open";
    open.textContent = "Open";
    open.setAttribute("aria-label", `Open episode ${row.episode_id}`);
    open.disabled = isCurrent;
    open.addEventListener("click", () => void this.opts.onOpen(row.episode_id));
    const del = document.createElement("button");
    del.type = "button";
    del.className = "secondary small ep-delete";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete episode ${row.episode_id}`);
    del.addEventListener("click", () => {
      if (!window.confirm(`Delete episode ${row.episode_id}? Its variables and history are removed.`)) return;
      void this.opts.run("Deleting…", async () => {
        // Already gone (expired meanwhile) is what the person wanted.
        await this.opts.api.deleteEpisode(row.episode_id, { ignoreMissing: true });
        this.rows = this.rows.filter((r) => r.episode_id !== row.episode_id);
        this.opts.onDeleted(row.episode_id);
        this.render();
      });
    });
    const text = document.createElement("span");
    text.className = "ep-text";
    text.append(id, meta);
    li.append(text, open, del);
    return li;
  }
}
