// Accessibility of the HumanAgent page, checked by axe-core (WCAG 2.1 A/AA rules: contrast, labels,
// ARIA, landmarks) inside real Chromium, in the states a person sees: fresh, after steps (including a
// failing one and an API error), on desktop and on a 390 px screen.
import { createRequire } from "node:module";
import type { Page } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import { asNewVisitor, openPage, reset, step, useTab, waitForStatus } from "./page-driver.js";

const require = createRequire(import.meta.url);
const axePath = require.resolve("axe-core/axe.min.js");
const baseUrl = inject("baseUrl");
let page: Page;

useTab((tab) => ({ page } = tab), { origin: null });

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe on the page; returns "rule: help @ selectors" lines for every violation. */
async function axeViolations(page: Page): Promise<string[]> {
  // Once per document: axe.min.js is about 0.5 MB to send and compile, and the page keeps it.
  if (!(await page.evaluate(() => "axe" in window))) await page.addScriptTag({ path: axePath });
  const violations = await page.evaluate(async () => {
    const axe = (
      window as unknown as { axe: { run(opts: unknown): Promise<{ violations: AxeViolation[] }> } }
    ).axe;
    const result = await axe.run({
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    });
    return result.violations;
  });
  return violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} @ ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`,
  );
}

describe.each([
  { name: "desktop 1280x800", viewport: { width: 1280, height: 800 } },
  { name: "phone 390x844", viewport: { width: 390, height: 844 } },
])("HumanAgent page accessibility ($name)", ({ viewport }) => {
  it("has no WCAG 2.1 AA violations when fresh, after steps, and while showing an error", async () => {
    // Fresh page (a first visit, at this viewport).
    await asNewVisitor(page, baseUrl, viewport);
    await openPage(page, baseUrl);
    expect(await axeViolations(page)).toEqual([]);

    // After a good step and a failing one (stdout, stderr, history, the options open).
    await reset(page);
    await step(page, "print('hello')");
    await step(page, "1 / 0");
    await page.locator("#options summary").click();
    expect(await axeViolations(page)).toEqual([]);

    // With the error banner (a page-side input error).
    await page.locator("#opt-timeout").fill("0");
    await page.locator("#reset").click();
    await waitForStatus(page, "Error");
    expect(await axeViolations(page)).toEqual([]);
  });
});
