// The landing page: create a session, then copy its invite links or open it.

import "./style.css";
import { renderLinks } from "./invite";

const button = document.querySelector<HTMLButtonElement>("#new")!;
const message = document.querySelector<HTMLElement>("#message")!;
const created = document.querySelector<HTMLElement>("#created")!;

button.onclick = async () => {
  button.disabled = true;
  message.textContent = "Starting a session…";
  try {
    const response = await fetch("/api/sessions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    const body = (await response.json()) as {
      ownerLink?: string;
      editorLink?: string;
      viewerLink?: string;
      message?: string;
    };
    if (!response.ok || !body.ownerLink) throw new Error(body.message ?? `HTTP ${response.status}`);
    message.textContent = "Your session is ready. Share these links, then open it:";
    renderLinks(created.querySelector(".invite-links")!, {
      editor: body.editorLink,
      viewer: body.viewerLink,
    });
    created.querySelector<HTMLAnchorElement>("#open")!.href = body.ownerLink;
    created.hidden = false;
  } catch (error) {
    message.textContent = `Could not create a session: ${(error as Error).message}`;
    button.disabled = false;
  }
};
