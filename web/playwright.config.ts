import { defineConfig } from "@playwright/test";
import { CHROMIUM_PATH, OFFLINE_ARGS } from "./tests/chromium.mjs";

// Real gateway and agents (started by tests/gateway.ts), Debian's Chromium, headless.
const artifacts = process.env.HUDDLE_ARTIFACTS ?? "../artifacts";
// A tone written by tests/global-setup.ts, played as every context's microphone.
export const FAKE_AUDIO = `${artifacts}/fake-audio.wav`;

export default defineConfig({
  testDir: "tests",
  outputDir: `${artifacts}/ui-results`,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  globalSetup: "./tests/global-setup.ts",
  use: {
    headless: true,
    viewport: { width: 1400, height: 860 },
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: CHROMIUM_PATH,
      // The machine has no internet: keep Chromium from trying to reach Google's services.
      args: [
        ...OFFLINE_ARGS,
        // Voice: a fake microphone playing a tone, and no permission prompt.
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        `--use-file-for-fake-audio-capture=${FAKE_AUDIO}`,
        "--autoplay-policy=no-user-gesture-required",
      ],
    },
  },
});
