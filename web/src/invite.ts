// Invite links (editor or viewer), made by the gateway's API and shown with a copy button.
// Used by the landing page after creating a session and by the owner inside the IDE.

export interface InviteLinks {
  editor?: string;
  viewer?: string;
}

/** Renders the links into `root`, each in a read-only field with a copy button. */
export function renderLinks(root: HTMLElement, links: InviteLinks): void {
  root.replaceChildren(
    ...(["editor", "viewer"] as const)
      .filter((role) => links[role])
      .map((role) => {
        const row = document.createElement("div");
        row.className = "invite-row";
        row.dataset.role = role;
        const label = document.createElement("label");
        label.textContent = role === "editor" ? "Editors (can type)" : "Viewers (read-only)";
        const input = document.createElement("input");
        input.readOnly = true;
        input.value = links[role]!;
        input.setAttribute("aria-label", `${role} invite link`);
        input.onfocus = () => input.select();
        const copy = document.createElement("button");
        copy.textContent = "Copy";
        copy.onclick = async () => {
          try {
            await navigator.clipboard.writeText(input.value);
          } catch {
            input.select();
            document.execCommand("copy");
          }
          copy.textContent = "Copied";
          setTimeout(() => (copy.textContent = "Copy"), 1500);
        };
        label.append(input);
        row.append(label, copy);
        return row;
      }),
  );
}

/** The owner's invite dialog in the IDE: asks the API for fresh links. */
export async function showInvites(
  sessionId: string | undefined,
  token: string | undefined,
  fail: (text: string) => void,
): Promise<void> {
  const dialog = document.querySelector<HTMLDialogElement>("#invite-dialog")!;
  if (!sessionId || !token) return;
  const links: InviteLinks = {};
  for (const role of ["editor", "viewer"] as const) {
    const response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}/invites`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ role }),
    });
    const body = (await response.json().catch(() => ({}))) as { link?: string; message?: string };
    if (!response.ok || !body.link) {
      fail(`Could not make an invite link: ${body.message ?? response.status}`);
      return;
    }
    links[role] = body.link;
  }
  renderLinks(dialog.querySelector(".invite-links")!, links);
  dialog.showModal();
}
