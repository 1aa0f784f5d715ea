// Who is in the session: colour, name, role, online or gone, voice mute state. Clicking
// someone follows them (their file, cursor and scroll) until you act yourself.

import type { Participant } from "./protocol";

interface Person extends Participant {
  online: boolean;
  speaking?: boolean;
}

export class People {
  private people = new Map<string, Person>();
  me: Participant | null = null;
  following: string | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly onFollow: (userId: string | null) => void,
    private readonly volume: { get(userId: string): number; set(userId: string, volume: number): void },
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

  /** The agent's word on someone's voice state (null: not in voice). */
  setVoice(userId: string, voice: Participant["voice"]): void {
    const person = this.people.get(userId);
    if (!person) return;
    person.voice = voice ?? null;
    if (!voice) person.speaking = false;
    this.render();
  }

  setSpeaking(userId: string, speaking: boolean): void {
    const person = this.people.get(userId);
    if (!person) return;
    person.speaking = speaking;
    const row = this.root.querySelector<HTMLElement>(`.person[data-user="${CSS.escape(userId)}"]`);
    row?.classList.toggle("speaking", speaking);
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
        // Words, not emoji: many machines (servers, CI) have no emoji font.
        voice.textContent = p.voice ? (p.voice.muted ? "muted" : "voice") : "";
        voice.title = p.voice ? (p.voice.muted ? "in voice, muted" : "in voice") : "";
        voice.dataset.muted = String(Boolean(p.voice?.muted));
        li.classList.toggle("in-voice", Boolean(p.voice));
        li.classList.toggle("speaking", Boolean(p.speaking && p.voice && !p.voice.muted));
        if (p.voice && !isMe && p.online) {
          const slider = document.createElement("input");
          slider.type = "range";
          slider.min = "0";
          slider.max = "1";
          slider.step = "0.05";
          slider.value = String(this.volume.get(p.user_id));
          slider.className = "volume";
          slider.title = `${p.name}'s volume`;
          slider.setAttribute("aria-label", `${p.name}'s volume`);
          slider.onclick = (e) => e.stopPropagation();
          slider.oninput = () => this.volume.set(p.user_id, Number(slider.value));
          li.appendChild(slider);
        }
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
