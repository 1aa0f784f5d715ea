// One browser edit through a gateway installed in the test cluster, driven by
// tests/e2e/tests/helm.rs (which passes everything in the environment):
//
//   HUDDLE_LINK        the link to open (http://<domain>/s/<id>/?token=...)
//   HUDDLE_MAP         "<domain>=<ip>": the gateway Service's address for the domain and its
//                      port hosts (there is no DNS for the domain in the test cluster)
//   HUDDLE_FILE        the file to open in the tree
//   HUDDLE_EXPECT      the text the file must show before typing
//   HUDDLE_TYPE        what to type at its end
//   HUDDLE_SCREENSHOT  where to save a screenshot
//
// Exits 0 when the typed text was acknowledged by the agent, non-zero with a reason otherwise.

import { chromium } from "playwright-core";
import { CHROMIUM_PATH, OFFLINE_ARGS } from "./chromium.mjs";

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const [domain, ip] = env("HUDDLE_MAP").split("=");
const file = env("HUDDLE_FILE");
const browser = await chromium.launch({
  executablePath: CHROMIUM_PATH,
  headless: true,
  args: [
    ...OFFLINE_ARGS,
    `--host-resolver-rules=MAP ${domain} ${ip}, MAP *.${domain} ${ip}`,
  ],
});
const deadline = (ms) => ({ timeout: ms });
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 800 } });
  await page.goto(env("HUDDLE_LINK"));
  await page.locator("#status", { hasText: "Connected" }).waitFor(deadline(60_000));
  await page.locator(`.tree-row[data-path="${file}"]`).click();
  const text = () => page.evaluate((f) => window.huddle.text(f), file);
  const until = async (what, check, ms = 20_000) => {
    const end = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await page.waitForTimeout(100);
    }
  };
  await until("the document", async () => (await text()) !== undefined);
  const shown = await text();
  if (shown !== env("HUDDLE_EXPECT")) {
    throw new Error(`the browser shows ${JSON.stringify(shown)}, not ${JSON.stringify(env("HUDDLE_EXPECT"))}`);
  }
  await page.locator("#editor .view-lines").click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(env("HUDDLE_TYPE"));
  await until("the agent to acknowledge every edit", async () =>
    page.evaluate(() => window.huddle.unsent() === 0),
  );
  await page.screenshot({ path: env("HUDDLE_SCREENSHOT") });
  console.log(`browser: typed ${JSON.stringify(env("HUDDLE_TYPE"))}, acknowledged`);
} finally {
  await browser.close();
}
