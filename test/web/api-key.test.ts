// The page against a hosted-mode stack (keys required): its own local stack with auth on (dynalite,
// the real Python executor, the API over HTTP), a real key from the key store, real Chromium.
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalStack, startLocalStack } from "../../functions/src/local/stack.js";
import { dynamoDbApiKeyStore } from "../../functions/src/store/dynamodb-api-keys.js";
import { openPage, reloadPage, reset, screenshot, step, text, useTab, waitForStatus } from "./page-driver.js";

let stack: LocalStack;
let dynamodb: DynamoDBClient;
let apiKey: string;
let page: Page;

useTab((tab) => ({ page } = tab), { origin: () => stack.baseUrl });
beforeAll(async () => {
  stack = await startLocalStack({ port: 0, dataDir: null, auth: true });
  dynamodb = new DynamoDBClient({
    endpoint: stack.dynamodbEndpoint,
    region: "us-east-1",
    credentials: stack.credentials,
  });
  ({ key: apiKey } = await dynamoDbApiKeyStore({ client: dynamodb, tableName: stack.tableName }).create({
    tenantId: "web-test",
  }));
});
afterAll(async () => {
  dynamodb?.destroy();
  await stack?.stop();
});

async function enterKey(key: string, remember = false): Promise<void> {
  await page.locator("#api-key").fill(key);
  if (remember) await page.locator("#api-key-remember").check();
  await page.locator("#auth-form button[type=submit]").click();
}

describe("HumanAgent page when the server requires API keys", () => {
  it("asks for a key, explains a wrong one, and works with a right one (kept per tab)", async () => {
    // Prepare / Act: open without a key.
    await openPage(page, stack.baseUrl);

    // Assess: the key field is shown and the status says why nothing works yet.
    expect(await page.locator("#auth").isVisible()).toBe(true);
    expect(await text(page, "#st-status")).toBe("API key needed");

    // Act: a wrong key.
    await enterKey("ce_not_a_real_key");
    await waitForStatus(page, "Error");

    // Assess: plain words, not "401".
    expect(await text(page, "#error-text")).toContain("did not accept the API key");
    await screenshot(page, "web-humanagent-api-key.png");
    expect(await page.evaluate(() => sessionStorage.getItem("coding-env:api-key"))).toBeNull();

    // Act: the right key, then play.
    await enterKey(apiKey);
    await waitForStatus(page, "Not initialized");
    await reset(page);
    await step(page, "print(6 * 7)");

    // Assess
    expect(await text(page, "#obs-stdout")).toBe("42");
    expect(await page.locator("#error").isHidden()).toBe(true);
    const stored = await page.evaluate(() => ({
      session: sessionStorage.getItem("coding-env:api-key"),
      local: localStorage.getItem("coding-env:api-key"),
    }));
    expect(stored).toEqual({ session: apiKey, local: null });

    // Act / Assess: a reload in the same tab keeps the key and resumes the episode.
    const episodeId = await text(page, "#st-episode");
    await reloadPage(page);
    expect(await text(page, "#st-episode")).toBe(episodeId);
    expect(await text(page, "#st-steps")).toBe("1");
  });

  it("remembers the key in localStorage only when asked, and forgets it on request", async () => {
    // Prepare
    await openPage(page, stack.baseUrl);

    // Act
    await enterKey(apiKey, true);
    await waitForStatus(page, "Not initialized");

    // Assess: a new tab of the same browser profile gets in without typing the key.
    expect(await page.evaluate(() => localStorage.getItem("coding-env:api-key"))).toBe(apiKey);
    const second = await page.context().newPage();
    try {
      await openPage(second, stack.baseUrl);
      expect(await text(second, "#st-status")).toBe("Not initialized");
    } finally {
      await second.close();
    }

    // Act / Assess: Forget removes it everywhere.
    await page.locator("#api-key-forget").click();
    expect(await text(page, "#st-status")).toBe("API key needed");
    expect(
      await page.evaluate(() => [
        sessionStorage.getItem("coding-env:api-key"),
        localStorage.getItem("coding-env:api-key"),
      ]),
    ).toEqual([null, null]);
  });
});
