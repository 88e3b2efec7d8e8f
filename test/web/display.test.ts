// A step's rich outputs (`display`: Jupyter MIME bundles) on the page: images as data URLs (SVG as
// an <img>, never inline), HTML through the page's allow-list sanitizer (no script, handlers,
// javascript: links, styles or frames; tables kept), Markdown and plain text as text; the history
// row keeps them. Real Chromium and the real stack: the step really runs, and its real answer gets
// the `display` list added on the way to the page (the bundles a cell would make), so the test does
// not depend on which Python packages the executor has.
import type { Page } from "playwright-core";
import { afterEach, beforeEach, describe, expect, inject, it } from "vitest";
import { openPage, reset, screenshot, step, useTab, WAIT } from "./page-driver.js";

const baseUrl = inject("baseUrl");
let page: Page;

// A 2x2 red PNG.
const PNG =
  "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAEklEQVR4nGP4z8DAwMDAxMDAAAAeCQIBFsyp8QAAAABJRU5ErkJggg==";
const SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10"><rect width="20" height="10" fill="#1d4ed8"/><script>window.__svgRan = true</script></svg>';
const HOSTILE_HTML = [
  "<table class='df'><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td><b>two</b></td></tr></tbody></table>",
  "<script>window.__scriptRan = true</script>",
  '<img src="x" onerror="window.__onerrorRan = true">',
  '<a href="javascript:window.__linkRan = true" onclick="window.__clickRan = true">click me</a>',
  "<style>body { display: none }</style>",
  '<iframe src="javascript:parent.__iframeRan = true"></iframe>',
  '<object data="x"></object>',
  '<p style="position:fixed;inset:0">styled</p>',
].join("");

const DISPLAY = [
  { data: { "image/png": PNG, "text/plain": "<Figure 2x2>" }, metadata: {} },
  { data: { "image/svg+xml": SVG }, metadata: {} },
  { data: { "text/html": HOSTILE_HTML, "text/plain": "a table" }, metadata: {} },
  { data: { "text/markdown": "# Title\n\n**bold** <b>raw</b>" }, metadata: {} },
  { data: { "text/plain": "plain <i>text</i>" }, metadata: {} },
];

useTab((tab) => ({ page } = tab));
beforeEach(async () => {
  // The real /step answer, with the display list a cell would produce added (when it has none).
  await page.route("**/step", async (route) => {
    const response = await route.fetch();
    const body = (await response.json()) as Record<string, unknown>;
    if (body.display === undefined) body.display = DISPLAY;
    await route.fulfill({ response, json: body });
  });
});
afterEach(async () => {
  await page.unrouteAll({ behavior: "ignoreErrors" });
});

const ran = (p: Page) =>
  p.evaluate(() => {
    const w = window as unknown as Record<string, unknown>;
    return ["__scriptRan", "__onerrorRan", "__linkRan", "__clickRan", "__iframeRan", "__svgRan"].filter(
      (name) => w[name] !== undefined,
    );
  });

describe("display outputs", () => {
  it("draws images, sanitized HTML, Markdown and text under the output, and the history keeps them", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);

    // Act
    await step(page, "print('with display')");

    // Assess: one item per bundle, of the richest type.
    const items = page.locator("#obs-display > .display-item");
    expect(await items.evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.mime))).toEqual([
      "image/png",
      "image/svg+xml",
      "text/html",
      "text/markdown",
      "text/plain",
    ]);
    // The PNG as a data URL that decodes; its text/plain as the alt text.
    const png = page.locator('#obs-display [data-mime="image/png"] img');
    expect(await png.getAttribute("src")).toBe(`data:image/png;base64,${PNG}`);
    expect(await png.getAttribute("alt")).toBe("<Figure 2x2>");
    await page.waitForFunction(
      () => {
        const img = document.querySelector<HTMLImageElement>('#obs-display [data-mime="image/png"] img');
        return img?.complete && img.naturalWidth === 2;
      },
      undefined,
      WAIT,
    );
    // The SVG as an <img> data URL, never inline.
    expect(await page.locator("#obs-display svg").count()).toBe(0);
    expect(await page.locator('#obs-display [data-mime="image/svg+xml"] img').getAttribute("src")).toMatch(
      /^data:image\/svg\+xml;base64,/,
    );
    // HTML: the table and its formatting kept, everything active gone.
    const html = page.locator('#obs-display [data-mime="text/html"] .display-html');
    expect(await html.locator("td").allTextContents()).toEqual(["1", "two"]);
    expect(await html.locator("td b").textContent()).toBe("two");
    expect(
      await html.locator("script, style, iframe, object, [style], [onerror], [onclick], [class]").count(),
    ).toBe(0);
    expect(await html.locator("a").getAttribute("href")).toBeNull();
    expect(await html.locator("img").count()).toBe(0); // src="x" is not a data: image
    // Markdown and text as text, markup not interpreted.
    expect(await page.locator('#obs-display [data-mime="text/markdown"] pre').textContent()).toBe(
      "# Title\n\n**bold** <b>raw</b>",
    );
    expect(
      await page
        .locator('#obs-display [data-mime="text/plain"] b, #obs-display [data-mime="text/plain"] i')
        .count(),
    ).toBe(0);
    expect(await page.locator('#obs-display [data-mime="text/plain"] pre').textContent()).toBe(
      "plain <i>text</i>",
    );
    // The history row has them too.
    expect(await page.locator("#history > li .h-display .display-item").count()).toBe(5);
    expect(await page.locator("#history > li .h-display svg, #history > li .h-display script").count()).toBe(
      0,
    );

    // Nothing ran: not the script, the handlers, the link (clicked), the iframe or the SVG's script.
    await html.locator("a").click();
    expect(await ran(page)).toEqual([]);
    expect(await page.locator("body").isVisible()).toBe(true);
    await screenshot(page, "web-display-1280.png");
  });

  it("a step without display shows none and clears the previous one", async () => {
    // Prepare
    await openPage(page, baseUrl);
    await reset(page);
    await step(page, "print(1)");
    expect(await page.locator("#obs-display").isVisible()).toBe(true);

    // Act: the next answer has no display.
    await page.unroute("**/step");
    await step(page, "print(2)");

    // Assess
    expect(await page.locator("#obs-display").isHidden()).toBe(true);
    expect(await page.locator("#obs-display > *").count()).toBe(0);
  });
});
