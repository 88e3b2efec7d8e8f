// The "Files" card: the open episode's working directory (kept in its state across steps, reloads
// and forks), listed after every change, each file downloadable; a file from this computer can be
// uploaded into it (committed as the episode's next version, like a step).
import type { CodingEnv, EpisodeFile, FileWritten } from "../../sdk/src/index.js";

export interface FilesPanelOpts {
  /** The list's elements (from index.html). */
  readonly list: HTMLElement;
  readonly empty: HTMLElement;
  readonly upload: HTMLInputElement;
  /** The open episode's client, or undefined when none is open. */
  readonly current: () => CodingEnv | undefined;
  /** Runs an action with the page's busy state and error display. */
  readonly run: (label: string, action: () => Promise<void>) => Promise<void>;
  /** An upload committed (the episode's step count and history changed). */
  readonly onUploaded: (written: FileWritten) => Promise<void>;
}

/** "512 B", "1.5 KiB", "3.2 MiB". */
export function fmtSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${Number(value.toFixed(1))} ${units[unit]}`;
}

/** Starts the browser's download of `bytes` under the file's own name. */
function saveBytes(bytes: Uint8Array, path: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: "application/octet-stream" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = path.split("/").at(-1) || "file";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export class FilesPanel {
  /** Counts refreshes, so an older answer (of a step before a Reset) never replaces a newer one. */
  private generation = 0;

  constructor(private readonly opts: FilesPanelOpts) {
    opts.upload.addEventListener("change", () => void this.uploadChosen());
  }

  /** Lists the open episode's files again; a failure leaves the list as it was (it is secondary). */
  async refreshQuietly(): Promise<void> {
    const env = this.opts.current();
    const generation = ++this.generation;
    if (!env?.episodeId) {
      this.show([]);
      return;
    }
    try {
      const files = await env.files();
      if (generation === this.generation && this.opts.current() === env) this.show(files);
    } catch {
      // The step or action that triggered the refresh already reported its own outcome.
    }
  }

  /** Enables the upload control only while an episode is open and nothing else runs. */
  setEnabled(enabled: boolean): void {
    this.opts.upload.disabled = !enabled;
  }

  private show(files: EpisodeFile[]): void {
    this.opts.list.replaceChildren(...files.map((file) => this.item(file)));
    this.opts.empty.hidden = files.length > 0;
  }

  private item(file: EpisodeFile): HTMLLIElement {
    const li = document.createElement("li");
    li.className = "file-item";
    li.dataset.path = file.path;
    const name = document.createElement("span");
    name.className = "mono file-path";
    name.textContent = file.path;
    const size = document.createElement("span");
    size.className = "file-size";
    size.textContent = fmtSize(file.size);
    const download = document.createElement("button");
    download.type = "button";
    download.className = "secondary small file-download";
    download.textContent = "Download";
    download.setAttribute("aria-label", `Download ${file.path} (${fmtSize(file.size)})`);
    download.addEventListener("click", () => void this.download(file.path));
    li.append(name, size, download);
    return li;
  }

  private async download(path: string): Promise<void> {
    const env = this.opts.current();
    if (!env) return;
    await this.opts.run("Downloading…", async () => {
      try {
        saveBytes(await env.readFile(path), path);
      } catch (err) {
        // Gone since the list was drawn (a step deleted it): show the list as it is now.
        if ((err as { code?: unknown }).code === "file_not_found") await this.refreshQuietly();
        throw err;
      }
    });
  }

  private async uploadChosen(): Promise<void> {
    const file = this.opts.upload.files?.[0];
    const env = this.opts.current();
    if (!file || !env) return;
    await this.opts.run("Uploading…", async () => {
      try {
        const written = await env.writeFile(file.name, new Uint8Array(await file.arrayBuffer()));
        await this.opts.onUploaded(written);
      } finally {
        // The same file chosen again is a new change event.
        this.opts.upload.value = "";
      }
    });
    await this.refreshQuietly();
  }
}
