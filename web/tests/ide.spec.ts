// The IDE in real Chromium against a real gateway and real agents: several people in one
// session, each in their own browser context.

import { expect, test, type Browser, type BrowserContext, type Page } from "@playwright/test";
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { ARTIFACTS, createSession, startGateway, type Links, type RunningGateway } from "./gateway";

const SCREENS = resolve(ARTIFACTS, "ui-screens");
let gateway: RunningGateway;

test.beforeAll(async () => {
  mkdirSync(SCREENS, { recursive: true });
  gateway = await startGateway("ui");
});

test.afterAll(async () => {
  gateway?.process.kill("SIGTERM");
});

interface Person {
  context: BrowserContext;
  page: Page;
}

async function join(browser: Browser, link: string, name?: string): Promise<Person> {
  const context = await browser.newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const page = await context.newPage();
  page.on("pageerror", (error) => console.log(`[page error] ${error.message}`));
  await page.goto(name ? `${link}&name=${encodeURIComponent(name)}` : link);
  await expect(page.locator("#status")).toHaveText("Connected", { timeout: 30_000 });
  return { context, page };
}

const text = (page: Page, file: string) =>
  page.evaluate((f) => (window as unknown as { huddle: { text(f: string): string | undefined } }).huddle.text(f), file);

async function createFile(page: Page, path: string): Promise<void> {
  await page.locator(".tree-new-file").click();
  const input = page.locator(".tree-input input");
  await input.fill(path);
  await input.press("Enter");
  await expect(page.locator(`.tree-row[data-path="${path}"]`)).toBeVisible();
}

async function openFile(page: Page, path: string): Promise<void> {
  await page.locator(`.tree-row[data-path="${path}"]`).click();
  await expect(page.locator(`.tab.active[data-file="${path}"]`)).toBeVisible();
  await expect.poll(() => text(page, path)).not.toBeUndefined();
}

/** Types at the end of the open editor's text. */
async function typeAtEnd(page: Page, keys: string): Promise<void> {
  await page.locator("#editor .view-lines").click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(keys);
}

const terminal = (page: Page) => page.locator(".term-pane:not([hidden]) .xterm-rows");

test("two people edit together; cursors, files, terminal and roles in a real browser", async ({ browser }) => {
  const links = await createSession(gateway.url, "Ada");
  const ada = await join(browser, links.ownerLink);
  const bob = await join(browser, links.editorLink, "Bob");

  // Each sees the other in the people list, with a role and online state.
  await expect(ada.page.locator(".person", { hasText: "Bob" })).toContainText("editor");
  await expect(bob.page.locator(".person", { hasText: "Ada" })).toContainText("online");

  // A file created by one appears in the other's tree.
  await createFile(ada.page, "hello.py");
  await expect(bob.page.locator('.tree-row[data-path="hello.py"]')).toBeVisible();

  // Text typed by one appears in the other's editor, highlighted as Python.
  await openFile(ada.page, "hello.py");
  await openFile(bob.page, "hello.py");
  await typeAtEnd(ada.page, "def greet(name):\n    return f'hi {name}'\n");
  await expect(bob.page.locator("#editor .view-lines")).toContainText("def greet(name):");
  await expect.poll(() => text(bob.page, "hello.py")).toBe(await text(ada.page, "hello.py"));
  await expect(bob.page.locator("#editor .view-lines .mtk1").first()).toBeVisible();
  const keywordColours = await bob.page
    .locator("#editor .view-lines span span")
    .evaluateAll((spans) => new Set(spans.map((s) => getComputedStyle(s).color)).size);
  expect(keywordColours, "syntax highlighting uses several colours").toBeGreaterThan(1);

  // Bob types too; both converge.
  await typeAtEnd(bob.page, "print(greet('Bob'))\n");
  await expect.poll(() => text(ada.page, "hello.py")).toContain("print(greet('Bob'))");
  await expect.poll(() => text(ada.page, "hello.py")).toBe(await text(bob.page, "hello.py"));

  // Ada's cursor shows in Bob's editor with her name on it, and Bob's in hers.
  await typeAtEnd(ada.page, "# end");
  const flag = (page: Page) =>
    page
      .locator("#editor .remote-caret")
      .first()
      .evaluate((el) => getComputedStyle(el, "::after").content);
  await expect.poll(() => flag(bob.page)).toContain("Ada");
  await typeAtEnd(bob.page, "#");
  await expect.poll(() => flag(ada.page)).toContain("Bob");

  // Terminal output typed by one appears in both.
  await ada.page.locator(".term-pane:not([hidden]) .xterm").click();
  await ada.page.keyboard.type("echo huddle-$((6*7))\n");
  await expect(terminal(ada.page)).toContainText("huddle-42");
  await expect(terminal(bob.page)).toContainText("huddle-42");

  // Folders and drag and drop: Bob moves hello.py into src/, Ada sees it move (and her tab
  // follows the file).
  await bob.page.locator(".tree-new-dir").click();
  await bob.page.locator(".tree-input input").fill("src");
  await bob.page.locator(".tree-input input").press("Enter");
  await expect(ada.page.locator('.tree-row[data-path="src"]')).toBeVisible();
  await bob.page.locator('.tree-row[data-path="hello.py"]').dragTo(bob.page.locator('.tree-row[data-path="src"]'));
  await expect(ada.page.locator('.tree-row[data-path="src/hello.py"]')).toBeVisible();
  await expect(ada.page.locator('.tree-row[data-path="hello.py"]')).toHaveCount(0);
  await expect(ada.page.locator('.tab[data-file="src/hello.py"]')).toBeVisible();

  // A binary file made in the terminal is offered as a download, not opened.
  await ada.page.locator(".term-pane:not([hidden]) .xterm").click();
  await ada.page.keyboard.type("printf 'PK\\003\\004\\000\\001' > data.bin\n");
  const binary = bob.page.locator('.tree-row.binary[data-path="data.bin"]');
  await expect(binary).toBeVisible();
  const download = bob.page.waitForEvent("download");
  await binary.click();
  expect((await download).suggestedFilename()).toBe("data.bin");

  // Following: Bob follows Ada; when she opens another file, Bob's editor goes there.
  await bob.page.locator(".person", { hasText: "Ada" }).click();
  await expect(bob.page.locator(".person.following", { hasText: "Ada" })).toBeVisible();
  await createFile(ada.page, "notes.md");
  await openFile(ada.page, "notes.md");
  await typeAtEnd(ada.page, "# Notes\n");
  await expect(bob.page.locator('.tab.active[data-file="notes.md"]')).toBeVisible();
  // Acting yourself ends following.
  await bob.page.locator("#editor .view-lines").click();
  await expect(bob.page.locator(".person.following")).toHaveCount(0);

  // A viewer can neither type in the editor nor in the terminal.
  const cy = await join(browser, links.viewerLink, "Cy");
  await expect(cy.page.locator(".person", { hasText: "Cy (you)" })).toContainText("viewer");
  await expect(cy.page.locator(".tree-new-file")).toBeHidden();
  await openFile(cy.page, "src/hello.py");
  const before = await text(ada.page, "src/hello.py");
  await cy.page.locator("#editor .view-lines").click();
  await cy.page.keyboard.type("VIEWER WAS HERE");
  await cy.page.locator(".term-pane:not([hidden]) .xterm").click();
  await cy.page.keyboard.type("echo viewer-typed\n");
  await ada.page.locator(".term-pane:not([hidden]) .xterm").click();
  await ada.page.keyboard.type("echo after-viewer\n");
  await expect(terminal(cy.page)).toContainText("after-viewer");
  await expect(terminal(ada.page)).not.toContainText("viewer-typed");
  expect(await text(cy.page, "src/hello.py")).toBe(before);
  expect(await text(ada.page, "src/hello.py")).toBe(before);

  // The main screen with two people in it, saved for people to look at.
  await ada.page.locator('.tab[data-file="src/hello.py"]').click();
  await bob.page.locator('.tab[data-file="src/hello.py"]').click();
  await typeAtEnd(bob.page, " ");
  await ada.page.screenshot({ path: resolve(SCREENS, "two-users-ada.png") });
  await bob.page.screenshot({ path: resolve(SCREENS, "two-users-bob.png") });
  await cy.page.screenshot({ path: resolve(SCREENS, "viewer-cy.png") });
  for (const p of [ada, bob, cy]) await p.context.close();
});

test("a reload while edits are unacknowledged loses nothing; a late joiner sees the same", async ({ browser }) => {
  const links: Links = await createSession(gateway.url, "Ada");
  const bob = await join(browser, links.editorLink, "Bob");
  await createFile(bob.page, "story.txt");
  await openFile(bob.page, "story.txt");

  const context = await browser.newContext();
  const page = await context.newPage();
  // Between Ada's page and the agent: while `hold` is set, the agent's messages to her are
  // kept back, so her first edit stays unacknowledged and the rest pile up unsent.
  let hold = false;
  await page.routeWebSocket(/\/ws$/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => server.send(m));
    server.onMessage((m) => {
      if (!hold) ws.send(m);
    });
  });
  await page.goto(links.ownerLink);
  await expect(page.locator("#status")).toHaveText("Connected");
  await openFile(page, "story.txt");
  await typeAtEnd(page, "It was a dark and stormy night.\n");
  await expect.poll(() => text(bob.page, "story.txt")).toContain("stormy night");

  hold = true;
  await typeAtEnd(page, "Suddenly, a shot rang out!\nThe maid screamed.\n");
  const expected = await text(page, "story.txt");
  expect(await page.evaluate(() => (window as unknown as { huddle: { unsent(): number } }).huddle.unsent())).toBe(1);
  await expect(page.locator("#unsent")).toContainText("unsent");

  // Leaving with unsent edits asks first; the test says "leave".
  const dialogs: string[] = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.type());
    void dialog.accept();
  });
  hold = false;
  await page.reload();
  expect(dialogs).toContain("beforeunload");
  await expect(page.locator("#status")).toHaveText("Connected");
  await expect.poll(() => text(bob.page, "story.txt")).toBe(expected);
  await expect.poll(() => text(page, "story.txt")).toBe(expected);
  await expect(page.locator("#unsent")).toHaveText("");

  // Bob runs something in the terminal; a third person joining late sees the same text and
  // the same terminal screen.
  await bob.page.locator(".term-pane:not([hidden]) .xterm").click();
  await bob.page.keyboard.type("for i in 1 2 3; do echo line-$i; done\n");
  await expect(terminal(bob.page)).toContainText("line-3");
  const late = await join(browser, links.editorLink, "Dee");
  await openFile(late.page, "story.txt");
  expect(await text(late.page, "story.txt")).toBe(expected);
  await expect(late.page.locator("#editor .view-lines")).toContainText("The maid screamed.");
  await expect(terminal(late.page)).toContainText("line-1");
  await expect(terminal(late.page)).toContainText("line-3");
  await late.page.screenshot({ path: resolve(SCREENS, "late-joiner.png") });
  await context.close();
  await late.context.close();
  await bob.context.close();
});

test("a hibernated session shows 'waking up' and comes back with its files", async ({ browser }) => {
  const links = await createSession(gateway.url, "Ada");
  const ada = await join(browser, links.ownerLink);
  await createFile(ada.page, "keep.txt");
  await openFile(ada.page, "keep.txt");
  await typeAtEnd(ada.page, "still here after sleeping");
  await expect.poll(() => ada.page.evaluate(() => (window as unknown as { huddle: { unsent(): number } }).huddle.unsent())).toBe(0);

  const token = new URL(links.ownerLink).searchParams.get("token");
  const hibernate = await fetch(`${gateway.url}/api/sessions/${links.id}/hibernate`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  expect(hibernate.status).toBeLessThan(300);
  await expect(ada.page.locator("#status")).toHaveText(/Waking up|Reconnecting/);
  await expect(ada.page.locator("#status")).toHaveText("Connected", { timeout: 60_000 });
  await expect.poll(() => text(ada.page, "keep.txt"), { timeout: 30_000 }).toBe("still here after sleeping");
  await ada.context.close();
});

test("the landing page creates a session and offers invite links to copy", async ({ browser }) => {
  const context = await browser.newContext();
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  const page = await context.newPage();
  await page.goto(gateway.url + "/");
  await page.locator("#new").click();
  const editor = page.locator('.invite-row[data-role="editor"] input');
  await expect(editor).toHaveValue(/\/s\/[a-h][a-z0-9]{25}\/\?token=/);
  await page.locator('.invite-row[data-role="viewer"] button').click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  expect(copied).toBe(await page.locator('.invite-row[data-role="viewer"] input').inputValue());
  await page.locator("#open").click();
  await expect(page.locator("#status")).toHaveText("Connected", { timeout: 30_000 });
  await expect(page.locator("#invite")).toBeVisible();
  await page.screenshot({ path: resolve(SCREENS, "owner-fresh-session.png") });
  await context.close();
});
