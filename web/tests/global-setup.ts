import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { ROOT } from "./gateway";

// The UI must be built (scripts/build-web.sh) before the browser tests run.
export default function globalSetup(): void {
  const index = resolve(process.env.HUDDLE_WEB_DIR ?? resolve(ROOT, "web/dist"), "index.html");
  if (!existsSync(index)) throw new Error(`${index} is missing: run scripts/build-web.sh first`);
}
