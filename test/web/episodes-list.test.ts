// The page's "Your episodes" list (GET /episodes, paged, with delete) and the quota message, against
// a hosted-mode stack of its own (keys required), so each test owns a tenant and its episodes.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import type { ApiKeyStore } from "../../functions/src/tenancy/index.js";
import { openPage, reset, screenshot, text, useTab, WAIT, waitForStatus } from "./page-driver.js";

let stack: LocalStack;
let dynamodb: DynamoDBClient;
let keys: ApiKeyStore;
let page: Page;

useTab((tab) => ({ page } = tab), { origin: () => stack.baseUrl });
beforeAll(async () => {
  stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
  dynamodb = new DynamoDBClient({
    endpoint: stack.dynamodbEndpoint,
    region: "us-east-1",
    credentials: stack.credentials,
  });
  keys = dynamoDbApiKeyStore({ client: dynamodb, tableName: stack.tableName });
  page.on("dialog", (dialog) => void dialog.accept());
});
afterAll(async () => {
  dynamodb?.destroy();
  await stack?.stop();
});

async function api(key: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${stack.baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

/** Opens the page with `key` already stored for the tab, as after typing it once. */
async function openWithKey(key: string): Promise<void> {
  // The key goes into the origin's sessionStorage before the page boots (/health: not a page load).
  await page.goto(`${stack.baseUrl}/health`);
  await page.evaluate((k) => sessionStorage.setItem("coding-env:api-key", k), key);
  await openPage(page, stack.baseUrl);
}

const listedIds = (p: Page): Promise<string[]> =>
  p
    .locator("#episodes > li")
    .evaluateAll((items) => items.map((li) => (li as HTMLElement).dataset.episode ?? ""));

describe("GET /episodes", () => {
  it("pages the tenant's live episodes and leaves out other tenants' and deleted ones", async () => {
    // Prepare
    const { key } = await keys.create({ tenantId: "list-api" });
    const { key: otherKey } = await keys.create({ tenantId: "list-api-other" });
    const created: string[] = [];
    for (let i = 0; i < 5; i++) {
      created.push(
        ((await (await api(key, "POST", "/reset", {})).json()) as { episode_id: string }).episode_id,
      );
    }
    await api(otherKey, "POST", "/reset", {});
    expect((await api(key, "DELETE", `/episodes/${created[0]}`)).status).toBe(204);

    // Act: pages of two.
    const seen: { episode_id: string; step_count: number; created_at: string; updated_at: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await api(key, "GET", `/episodes?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { episodes: typeof seen; next_cursor: string | null };
      expect(body.episodes.length).toBeLessThanOrEqual(2);
      seen.push(...body.episodes);
      cursor = body.next_cursor;
      pages++;
    } while (cursor !== null && pages < 10);

    // Assess
    expect(pages).toBe(2);
    expect(seen.map((e) => e.episode_id).sort()).toEqual(created.slice(1).sort());
    expect(seen[0]).toMatchObject({ step_count: 0 });
    expect(Date.parse(seen[0]?.created_at ?? "")).not.toBeNaN();
    expect((await api(key, "GET", "/episodes?limit=0")).status).toBe(422);
    const anonymous = await fetch(`${stack.baseUrl}/episodes`);
    expect(anonymous.status).toBe(401);
  });
});

describe("HumanAgent page: your episodes", () => {
  it("lists the episodes in pages, opens one, and deletes one (the open one too)", async () => {
    // Prepare: 23 episodes (more than one page of 20).
    const { key } = await keys.create({ tenantId: "list-page" });
    const created: string[] = [];
    for (let i = 0; i < 23; i++) {
      created.push(
        ((await (await api(key, "POST", "/reset", {})).json()) as { episode_id: string }).episode_id,
      );
    }

    // Act
    await openWithKey(key);

    // Assess: one page, then the rest.
    expect((await listedIds(page)).length).toBe(20);
    expect(await page.locator("#episodes-more").isVisible()).toBe(true);
    await page.locator("#episodes-more").click();
    await page.waitForFunction(
      () => document.querySelectorAll("#episodes > li").length === 23,
      undefined,
      WAIT,
    );
    expect((await listedIds(page)).sort()).toEqual([...created].sort());
    expect(await page.locator("#episodes-more").isHidden()).toBe(true);

    // Act: open one from the list.
    const target = created[5] as string;
    await page.locator(`#episodes > li[data-episode="${target}"] .ep-open`).click();
    await page.waitForFunction(
      (id) => document.getElementById("st-episode")?.textContent === id,
      target,
      WAIT,
    );
    await waitForStatus(page, "Ready");

    // Act: delete another one, then the open one.
    const other = created[6] as string;
    await page.locator(`#episodes > li[data-episode="${other}"] .ep-delete`).click();
    await page.waitForFunction(
      (id) => !document.querySelector(`#episodes > li[data-episode="${id}"]`),
      other,
      WAIT,
    );
    await page.locator(`#episodes > li[data-episode="${target}"] .ep-delete`).click();
    await page.waitForFunction(
      (id) => !document.querySelector(`#episodes > li[data-episode="${id}"]`),
      target,
      WAIT,
    );

    // Assess: gone on the server, and the page left the deleted episode.
    expect((await api(key, "GET", `/episodes/${other}`)).status).toBe(404);
    expect((await api(key, "GET", `/episodes/${target}`)).status).toBe(404);
    expect(await text(page, "#st-episode")).toBe("–");
    expect(await page.evaluate(() => localStorage.getItem("coding-env:episode"))).toBeNull();
  });

  it("shows the server's own quota message, and a delete in the list frees the slot", async () => {
    // Prepare: a key allowed two live episodes.
    const { key } = await keys.create({ tenantId: "list-quota", quotas: { activeEpisodes: 2 } });
    await openWithKey(key);
    const first = await reset(page);
    await reset(page);

    // Act: a third Reset.
    await page.locator("#reset").click();
    await waitForStatus(page, "Error");

    // Assess: the server's message (names the quota and its limit), plus what to do.
    const message = await text(page, "#error-text");
    expect(message).toContain("Quota 'active_episodes' exceeded: at most 2 episodes may be alive at once.");
    expect(message).toContain("Your episodes");
    expect((await listedIds(page)).length).toBe(2);
    await screenshot(page, "web-episodes-quota.png");

    // Act: delete the first episode from the list; Reset works again.
    await page.locator(`#episodes > li[data-episode="${first}"] .ep-delete`).click();
    await page.waitForFunction(
      (id) => !document.querySelector(`#episodes > li[data-episode="${id}"]`),
      first,
      WAIT,
    );
    await reset(page);

    // Assess
    expect((await listedIds(page)).length).toBe(2);
    expect(await page.locator("#error").isHidden()).toBe(true);
  });

  it("asks for a key when there is none, and a refused key shows the server's own words", async () => {
    // Act
    await openPage(page, stack.baseUrl);

    // Assess: the prompt, focused on the field's purpose.
    expect(await page.locator("#auth").isVisible()).toBe(true);
    expect(await text(page, "#st-status")).toBe("API key needed");
    expect(await page.locator("#api-key").isVisible()).toBe(true);

    // Act: a key the server does not know.
    await page.locator("#api-key").fill("ce_unknown_key_for_the_message");
    await page.locator("#auth-form button[type=submit]").click();
    await waitForStatus(page, "Error");

    // Assess: the server's message is shown, inside the page's sentence.
    const serverMessage = (
      (await (await api("ce_unknown_key_for_the_message", "GET", "/state")).json()) as {
        error: { message: string };
      }
    ).error.message;
    expect(serverMessage.length).toBeGreaterThan(0);
    expect(await text(page, "#error-text")).toContain(serverMessage);
    expect(await page.locator("#auth").isVisible()).toBe(true);
  });
});
