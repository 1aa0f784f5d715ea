// Voice in real Chromium with a fake microphone (a tone), through the agent's SFU.

import { expect, test, type Page } from "@playwright/test";
import { resolve } from "node:path";
import { ARTIFACTS, createSession, startGateway, type RunningGateway } from "./gateway";

let gateway: RunningGateway;

test.beforeAll(async () => {
  gateway = await startGateway("ui-voice");
});

test.afterAll(async () => {
  gateway?.process.kill("SIGTERM");
});

type Stats = { packetsReceived: number; bytesReceived: number; tracks: number };
const stats = (page: Page) =>
  page.evaluate(() => (window as unknown as { huddle: { voiceStats(): Promise<Stats> } }).huddle.voiceStats());

test("two people in voice hear each other; mute is shown to everyone and stops the audio", async ({ browser }) => {
  const links = await createSession(gateway.url, "Ada");
  const pages: Page[] = [];
  for (const [link, name] of [
    [links.ownerLink, ""],
    [links.editorLink + "&name=Bob", ""],
  ]) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on("pageerror", (error) => console.log(`[page error] ${error.message}`));
    page.on("console", (m) => m.type() !== "debug" && console.log(`[console] ${m.text()}`));
    await page.goto(link + name);
    await expect(page.locator("#status")).toHaveText("Connected", { timeout: 30_000 });
    pages.push(page);
  }
  const [ada, bob] = pages;
  for (const page of pages) {
    await page.locator("#voice-join").click();
    await expect(page.locator("#voice-join")).toHaveText("Leave voice", { timeout: 30_000 });
  }
  // Both show both in voice, unmuted.
  for (const page of pages) {
    await expect(page.locator(".person.in-voice")).toHaveCount(2);
  }
  // Audio arrives both ways (getStats), and each shows the other speaking (the tone).
  for (const page of pages) {
    await expect.poll(async () => (await stats(page)).packetsReceived, { timeout: 20_000 }).toBeGreaterThan(50);
    expect((await stats(page)).tracks).toBe(1);
  }
  await expect(bob.locator(".person.speaking", { hasText: "Ada" })).toBeVisible();
  await expect(ada.locator(".person.speaking", { hasText: "Bob" })).toBeVisible();
  await ada.screenshot({ path: resolve(ARTIFACTS, "ui-screens", "voice-ada.png") });

  // Ada mutes: Bob sees it, and her packets stop reaching him.
  await ada.locator("#voice-mute").click();
  await expect(bob.locator('.person', { hasText: "Ada" }).locator('.voice[data-muted="true"]')).toBeVisible();
  await bob.waitForTimeout(500);
  const before = (await stats(bob)).packetsReceived;
  await bob.waitForTimeout(2000);
  const after = (await stats(bob)).packetsReceived;
  expect(after - before, "packets from a muted publisher").toBeLessThan(5);
  // Bob's audio still reaches Ada.
  const adaBefore = (await stats(ada)).packetsReceived;
  await expect.poll(async () => (await stats(ada)).packetsReceived).toBeGreaterThan(adaBefore + 20);

  // Bob leaves voice: Ada's list shows it.
  await bob.locator("#voice-join").click();
  await expect(ada.locator(".person.in-voice")).toHaveCount(1);
  for (const page of pages) await page.context().close();
});
