// The page's "Files" card: the open episode's files listed after each step, downloaded on click
// (the bytes equal what the step wrote) and uploaded from this computer. Real Chromium, the real
// page bundle, the real local stack.
import type { Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import {
  downloadedBytes,
  openPage,
  reloadPage,
  reset,
  screenshot,
  setEpisodeOptions,
  step,
  text,
  useTab,
  WAIT,
  waitForStatus,
} from "./page-driver.js";

const baseUrl = inject("baseUrl");
let page: Page;
const viewport = { width: 1280, height: 900 };

useTab((tab) => ({ page } = tab), { context: { viewport, acceptDownloads: true } });

const listedFiles = (p: Page): Promise<{ path: string; size: string }[]> =>
  p.locator("#files > li").evaluateAll((items) =>
    items.map((li) => ({
      path: (li as HTMLElement).dataset.path ?? "",
      size: li.querySelector(".file-size")?.textContent ?? "",
    })),
  );

/** Waits until the list shows exactly `paths` (in order). */
async function waitForFiles(p: Page, paths: string[]): Promise<void> {
  await p.waitForFunction(
    (want) =>
      JSON.stringify(
        [...document.querySelectorAll<HTMLElement>("#files > li")].map((li) => li.dataset.path),
      ) === JSON.stringify(want),
    paths,
    WAIT,
  );
}

/** The bytes a step writes: every byte value, three times (so text decoding would change them). */
const written = Buffer.from([...Array(256).keys(), ...Array(256).keys(), ...Array(256).keys()]);

describe("HumanAgent page: the episode's files", () => {
  it("lists the files a step writes, downloads one byte for byte, and follows later steps", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await setEpisodeOptions(page, { policy: "full" });
    await reset(page);
    expect(await page.locator("#files-empty").isVisible()).toBe(true);

    // Act: a step writes a binary file in a folder and a text file.
    await step(
      page,
      "import os\nos.makedirs('data', exist_ok=True)\nopen('data/out.bin', 'wb').write(bytes(range(256)) * 3)\nopen('notes.txt', 'w').write('héllo')",
    );
    await waitForFiles(page, ["data/out.bin", "notes.txt"]);

    // Assess: names and sizes.
    expect(await listedFiles(page)).toEqual([
      { path: "data/out.bin", size: "768 B" },
      { path: "notes.txt", size: "6 B" },
    ]);
    expect(await page.locator("#files-empty").isHidden()).toBe(true);
    await screenshot(page, "web-files.png");

    // Act: download the binary file.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.locator('#files > li[data-path="data/out.bin"] .file-download').click(),
    ]);

    // Assess: the very bytes the step wrote, under the file's own name.
    expect(download.suggestedFilename()).toBe("out.bin");
    expect((await downloadedBytes(download)).equals(written)).toBe(true);

    // Act / Assess: a later step deletes one; the list follows.
    await step(page, "os.remove('notes.txt')");
    await waitForFiles(page, ["data/out.bin"]);

    // Act / Assess: a reload lists the resumed episode's files.
    await reloadPage(page);
    await waitForFiles(page, ["data/out.bin"]);
  });

  it("uploads a file the next step reads; the upload is a history row and counts as a step", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await setEpisodeOptions(page, { policy: "full" });
    await reset(page);

    // Act
    await page.locator("#file-upload").setInputFiles({
      name: "input.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("uploaded from the page"),
    });
    await waitForFiles(page, ["input.txt"]);
    await waitForStatus(page, "Ready");

    // Assess: committed like a step.
    expect(await text(page, "#st-steps")).toBe("1");
    expect(await text(page, "#history > li .h-code")).toBe("(uploaded input.txt)");

    // Act / Assess: the next step sees it.
    await step(page, "print(open('input.txt').read())");
    expect(await text(page, "#obs-stdout")).toBe("uploaded from the page");
    expect(await text(page, "#st-steps")).toBe("2");
  });

  it("a fork lists the same files; the original keeps its own after the fork changes them", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await setEpisodeOptions(page, { policy: "full" });
    const original = await reset(page);
    await step(page, "open('shared.txt', 'w').write('one')");
    await waitForFiles(page, ["shared.txt"]);

    // Act
    await page.locator("#fork").click();
    await page.waitForFunction(
      (id) => {
        const shown = document.getElementById("st-episode")?.textContent;
        return shown !== id && shown !== "–" && document.getElementById("st-status")?.textContent === "Ready";
      },
      original,
      WAIT,
    );
    await waitForFiles(page, ["shared.txt"]);
    await step(page, "open('fork-only.txt', 'w').write('two')");
    await waitForFiles(page, ["fork-only.txt", "shared.txt"]);

    // Assess: the original episode, opened again, has only its own file. The shared stack's
    // tenant holds every suite's episodes: page through the list until the original shows.
    const row = page.locator(`#episodes > li[data-episode="${original}"] .ep-open`);
    while ((await row.count()) === 0) {
      const more = page.locator("#episodes-more");
      expect(await more.isVisible()).toBe(true); // else the list ended without it
      const shown = await page.locator("#episodes > li").count();
      await more.click();
      await page.waitForFunction((n) => document.querySelectorAll("#episodes > li").length > n, shown, WAIT);
    }
    await row.click();
    await page.waitForFunction(
      (id) => document.getElementById("st-episode")?.textContent === id,
      original,
      WAIT,
    );
    await waitForFiles(page, ["shared.txt"]);
  });
});
