// Starts a real Huddle gateway for the browser tests: the one-machine runtime with agents as
// local processes, SQLite, the built UI. Everything listens on loopback.

import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync, openSync, rmSync } from "node:fs";
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "../..");
export const ARTIFACTS = process.env.HUDDLE_ARTIFACTS ?? resolve(ROOT, "artifacts");

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? done(address.port) : fail(new Error("no port"))));
    });
  });
}

export interface RunningGateway {
  url: string;
  process: ChildProcess;
}

export async function startGateway(name: string): Promise<RunningGateway> {
  const target = process.env.CARGO_TARGET_DIR ?? resolve(process.env.HOME ?? "/root", ".cache/huddle/target");
  const bin = resolve(target, process.env.HUDDLE_CARGO_PROFILE ?? "debug");
  const data = resolve(ARTIFACTS, `${name}-data`);
  rmSync(data, { recursive: true, force: true });
  mkdirSync(data, { recursive: true });
  const port = await freePort();
  const internal = await freePort();
  const url = `http://localhost:${port}`;
  const log = openSync(resolve(ARTIFACTS, `${name}-gateway.log`), "w");
  const child = spawn(
    resolve(bin, "huddle-gateway"),
    [
      "--runtime=process",
      `--listen=127.0.0.1:${port}`,
      `--internal-listen=127.0.0.1:${internal}`,
      `--public-url=${url}`,
      `--data-dir=${data}`,
      `--upgrade-socket=${resolve(data, "upgrade.sock")}`,
      "--api-rate=500",
    ],
    {
      env: {
        ...process.env,
        HUDDLE_AGENT_BINARY: resolve(bin, "huddle-agent"),
        HUDDLE_WEB_DIR: process.env.HUDDLE_WEB_DIR ?? resolve(ROOT, "web/dist"),
        RUST_LOG: process.env.RUST_LOG ?? "info",
      },
      stdio: ["ignore", log, log],
    },
  );
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // not up yet
    }
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}; see ${name}-gateway.log`);
    if (Date.now() > deadline) throw new Error("the gateway did not answer /healthz within 30 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, process: child };
}

export interface Links {
  id: string;
  ownerLink: string;
  editorLink: string;
  viewerLink: string;
}

/** Creates a session through the REST API, as the landing page does. */
export async function createSession(gatewayUrl: string, owner = "Ada"): Promise<Links> {
  const response = await fetch(`${gatewayUrl}/api/sessions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ owner }),
  });
  if (response.status !== 201) throw new Error(`create answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as Links;
}
