// Who is in the session: colour, name, role, online or gone, voice mute state. Clicking
// someone follows them (their file, cursor and scroll) until you act yourself.

import type { Participant } from "./protocol";

interface Person extends Participant {
  online: boolean;
}

export class People {
  private people = new Map<string, Person>();
  me: Participant | null = null;
  following: string | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly onFollow: (userId: string | null) => void,
  ) {
    root.innerHTML = `<div class="panel-title">People</div><ul class="people"></ul>`;
  }

  welcome(me: Participant, participants: Participant[]): void {
    this.me = me;
    for (const person of this.people.values()) person.online = false;
    for (const p of participants) this.people.set(p.user_id, { ...p, online: true });
    this.render();
  }

  joined(p: Participant): void {
    this.people.set(p.user_id, { ...p, online: true });
    this.render();
  }

  /** Someone left: they stay on the list, shown as gone, until they come back. */
  left(userId: string): void {
    const person = this.people.get(userId);
    if (person) person.online = false;
    if (this.following === userId) this.follow(null);
    this.render();
  }

  get(userId: string): Person | undefined {
    return this.people.get(userId);
  }

  nameOf(userId: string): string {
    return this.people.get(userId)?.name || "someone";
  }

  follow(userId: string | null): void {
    if (userId === this.me?.user_id) userId = null;
    this.following = userId;
    this.onFollow(userId);
    this.render();
  }

  render(): void {
    const list = this.root.querySelector(".people")!;
    const sorted = [...this.people.values()].sort(
      (a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name),
    );
    list.replaceChildren(
      ...sorted.map((p) => {
        const li = document.createElement("li");
        li.className = "person";
        li.dataset.user = p.user_id;
        li.classList.toggle("offline", !p.online);
        li.classList.toggle("following", this.following === p.user_id);
        const isMe = p.user_id === this.me?.user_id;
        li.innerHTML = `<span class="dot"></span><span class="person-name"></span><span class="role"></span><span class="voice"></span><span class="state"></span>`;
        li.querySelector<HTMLElement>(".dot")!.style.background = p.color;
        li.querySelector(".person-name")!.textContent = (p.name || "Guest") + (isMe ? " (you)" : "");
        li.querySelector(".role")!.textContent = p.role;
        const voice = li.querySelector<HTMLElement>(".voice")!;
        voice.textContent = p.voice ? (p.voice.muted ? "🔇" : "🎙") : "";
        voice.title = p.voice ? (p.voice.muted ? "muted" : "speaking allowed") : "not in voice";
        voice.classList.toggle("speaking", Boolean(p.voice?.speaking));
        li.querySelector(".state")!.textContent = p.online
          ? this.following === p.user_id
            ? "following"
            : "online"
          : "gone";
        if (!isMe && p.online) {
          li.title = this.following === p.user_id ? "Stop following" : `Follow ${p.name}`;
          li.onclick = () => this.follow(this.following === p.user_id ? null : p.user_id);
        }
        return li;
      }),
    );
  }
}
