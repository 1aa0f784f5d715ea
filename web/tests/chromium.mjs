// How every test here launches Debian's Chromium: its path, and the flags that keep it off
// the network it does not have (Google's services, QUIC, updates). Plain JavaScript so that
// tests/cluster-browser.mjs (run by node directly) and playwright.config.ts share it.

export const CHROMIUM_PATH = process.env.HUDDLE_CHROMIUM ?? "/usr/bin/chromium";

export const OFFLINE_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
