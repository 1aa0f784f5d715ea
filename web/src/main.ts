// The IDE page: wires the connection to the editor, tabs, file tree, terminals and people.

import "./style.css";
import { monaco } from "./editor/monaco";
import { SharedDocument } from "./editor/document";
import { Connection, tabClientId, type Status } from "./connection";
import { FileTree } from "./tree";
import { People } from "./people";
import { Terminals } from "./terminal";
import { crc32, type ClientMessage, type ServerMessage } from "./protocol";
import type { PendingState } from "./ot/client";
import { showInvites } from "./invite";
import { Voice, type VoiceStatus } from "./voice";

const $ = <T extends HTMLElement>(selector: string) => document.querySelector<T>(selector)!;

const sessionKey = `huddle:${location.pathname}`;
const store = {
  pending(file: string): PendingState | null {
    const raw = sessionStorage.getItem(`${sessionKey}:pending:${file}`);
    return raw ? (JSON.parse(raw) as PendingState) : null;
  },
  setPending(file: string, state: PendingState | null): void {
    if (state) sessionStorage.setItem(`${sessionKey}:pending:${file}`, JSON.stringify(state));
    else sessionStorage.removeItem(`${sessionKey}:pending:${file}`);
  },
  tabs(): { open: string[]; active: string | null } {
    const raw = sessionStorage.getItem(`${sessionKey}:tabs`);
    return raw ? JSON.parse(raw) : { open: [], active: null };
  },
  setTabs(open: string[], active: string | null): void {
    sessionStorage.setItem(`${sessionKey}:tabs`, JSON.stringify({ open, active }));
  },
};

class App {
  private readonly connection: Connection;
  private readonly docs = new Map<string, SharedDocument>();
  /** Files asked for with `since` whose catch-up has not ended. */
  private readonly awaitingSince = new Map<string, number>();
  private readonly tabs: string[] = [];
  private active: string | null = null;
  private readonly editor: monaco.editor.IStandaloneCodeEditor;
  private readonly tree: FileTree;
  private readonly people: People;
  private readonly terminals: Terminals;
  private readonly voice: Voice;
  private unsent = 0;
  private status: Status = "connecting";

  constructor() {
    this.connection = new Connection(tabClientId(), {
      status: (status, detail) => this.setStatus(status, detail),
      message: (message) => this.onMessage(message),
    });
    this.editor = monaco.editor.create($("#editor"), {
      model: null,
      automaticLayout: true,
      theme: "vs-dark",
      fontSize: 14,
      minimap: { enabled: false },
      readOnly: true,
      readOnlyMessage: { value: "Viewers can watch but not edit." },
    });
    this.tree = new FileTree($("#files"), {
      send: (m) => this.send(m),
      openFile: (path) => this.openFile(path),
      download: (path) => void this.download(path),
      canWrite: () => this.canWrite(),
    });
    this.voice = new Voice(
      {
        send: (m) => this.send(m),
        status: (status, detail) => this.voiceStatus(status, detail),
        speaking: (userId, speaking) => this.people.setSpeaking(userId, speaking),
        myUserId: () => this.people.me?.user_id,
      },
      () => new URL("voice/config", location.href),
      () => this.connection.me?.token,
    );
    this.people = new People($("#people"), (userId) => this.followChanged(userId), {
      get: (userId) => this.voice.volume(userId),
      set: (userId, volume) => this.voice.setVolume(userId, volume),
    });
    $("#voice-join").onclick = () => {
      if (this.voice.status === "on" || this.voice.status === "joining") this.voice.leave();
      else void this.voice.join();
    };
    $("#voice-mute").onclick = () => {
      this.voice.setMuted(!this.voice.muted);
      $("#voice-mute").textContent = this.voice.muted ? "Unmute" : "Mute";
      $("#voice-mute").setAttribute("aria-pressed", String(this.voice.muted));
    };
    this.terminals = new Terminals($("#terminals"), (m) => this.send(m));
    this.bindEditor();
    const saved = store.tabs();
    this.tabs.push(...saved.open);
    this.active = saved.active;
    window.addEventListener("beforeunload", (event) => {
      if (this.unsent > 0) {
        event.preventDefault();
        event.returnValue = "You have edits the server has not received yet.";
      }
    });
    // For tests and debugging: a read-only view of what this page knows.
    (window as unknown as { huddle: unknown }).huddle = {
      text: (file: string) => this.docs.get(file)?.client.text,
      terminalText: (id: number) => this.terminals.text(id),
      status: () => this.status,
      unsent: () => this.unsent,
      drop: () => this.connection.drop(),
      voiceStats: () => this.voice.stats(),
      voiceStatus: () => this.voice.status,
    };
    this.connection.start();
  }

  private canWrite(): boolean {
    const role = this.people.me?.role;
    return role === "owner" || role === "editor";
  }

  private send(message: ClientMessage): void {
    this.connection.send(message);
  }

  private setStatus(status: Status, detail?: string): void {
    this.status = status;
    const pill = $("#status");
    const text: Record<Status, string> = {
      connecting: "Connecting…",
      connected: "Connected",
      reconnecting: "Reconnecting…",
      waking: "Waking up…",
      "signed-out": "Signed out",
      failed: "Cannot join",
    };
    pill.textContent = text[status];
    pill.dataset.status = status;
    const overlay = $("#overlay");
    const blocking = status === "waking" || status === "signed-out" || status === "failed";
    overlay.hidden = !blocking;
    if (status === "waking") {
      overlay.querySelector("h2")!.textContent = "Waking up…";
      overlay.querySelector("p")!.textContent =
        "This session was asleep to save resources. Its files are being restored; this takes a few seconds.";
    } else if (blocking) {
      overlay.querySelector("h2")!.textContent = text[status];
      overlay.querySelector("p")!.textContent = detail ?? "";
    }
    for (const doc of this.docs.values()) if (status !== "connected") doc.catchingUp = true;
  }

  private voiceStatus(status: VoiceStatus, detail?: string): void {
    const join = $("#voice-join");
    join.textContent = status === "on" ? "Leave voice" : status === "joining" ? "Joining voice…" : "Join voice";
    join.dataset.status = status;
    $("#voice-mute").hidden = status !== "on" && status !== "joining";
    if (status === "failed") {
      console.warn("voice failed:", detail);
      this.toast(`Voice: ${detail ?? "could not connect"}. Try again.`, "error");
    }
  }

  private onMessage(message: ServerMessage): void {
    if (message.type.startsWith("voice_") || (message.type === "error" && message.code === "voice_failed")) {
      if (message.type === "voice_state") this.people.setVoice(message.user_id, message.voice);
      else void this.voice.handle(message);
      return;
    }
    switch (message.type) {
      case "welcome":
        // The agent forgot our voice connection with the old socket: connect again.
        if (this.voice.status === "on" || this.voice.status === "joining") {
          this.voice.leave();
          void this.voice.join();
        }
        this.people.welcome(message.you, message.participants);
        this.tree.reset(message.tree);
        this.terminals.welcome(message.terminals, this.canWrite());
        this.editor.updateOptions({ readOnly: !this.canWrite() });
        $("#who").textContent = `${message.you.name || "Guest"} · ${message.you.role}`;
        $("#invite").hidden = message.you.role !== "owner";
        for (const file of this.tabs) this.requestFile(file);
        if (this.active) this.showTab(this.active);
        this.renderTabs();
        break;
      case "participant_joined":
        this.people.joined(message.participant);
        break;
      case "participant_left":
        this.people.left(message.user_id);
        for (const doc of this.docs.values()) doc.removeCursor(message.user_id);
        break;
      case "document":
        this.onDocument(message);
        break;
      case "op": {
        const doc = this.docs.get(message.file);
        if (!doc) break;
        try {
          doc.serverOp(message.rev, message.client_id, message.seq, message.op);
        } catch (error) {
          console.warn("resynchronizing", message.file, error);
          this.requestFile(message.file);
        }
        break;
      }
      case "cursor": {
        const doc = this.docs.get(message.file);
        // Our own cursor (from another tab of ours) is already where we see it.
        if (!doc || message.rev !== doc.client.rev || message.user_id === this.people.me?.user_id) break;
        doc.remoteCursor(message.user_id, message.color, message.ranges);
        if (this.people.following === message.user_id && this.active === message.file) {
          const at = doc.cursorPosition(message.user_id);
          if (at) this.editor.revealPositionInCenterIfOutsideViewport(at);
        }
        break;
      }
      case "viewport":
        if (this.people.following === message.user_id) {
          if (this.tree.entry(message.file)?.binary !== true) this.openFile(message.file, false);
          this.editor.setScrollTop(this.editor.getTopForLineNumber(message.top_line + 1));
        }
        break;
      case "checksum": {
        const doc = this.docs.get(message.file);
        if (!doc) break;
        if (this.awaitingSince.delete(message.file)) doc.caughtUp();
        if (!doc.client.hasPending && doc.client.rev === message.rev && crc32(doc.client.text) !== message.checksum) {
          console.warn("checksum mismatch: reloading", message.file);
          this.send({ type: "open", file: message.file });
        }
        break;
      }
      case "file_changed":
        this.tree.change(message.change);
        if (message.change.kind === "deleted") {
          for (const file of [...this.tabs]) {
            if (file === message.change.path || file.startsWith(message.change.path + "/")) this.closeTab(file, false);
          }
        } else if (message.change.kind === "renamed") {
          const { from, to } = message.change;
          for (const file of [...this.tabs]) {
            if (file === from || file.startsWith(from + "/")) {
              const wasActive = this.active === file;
              this.closeTab(file, false);
              this.openFile(to + file.slice(from.length), wasActive);
            }
          }
        }
        break;
      case "terminal_opened":
        this.terminals.opened(message.id);
        break;
      case "terminal_snapshot":
        this.terminals.snapshot(message.id, message.cols, message.rows, message.data);
        break;
      case "terminal_output":
        this.terminals.output(message.id, message.data);
        break;
      case "terminal_exited":
        this.terminals.exited(message.id);
        break;
      case "notice":
        this.toast(message.message, "notice");
        break;
      case "error":
        this.toast(message.message, "error");
        break;
    }
  }

  /** Asks for a file: with `since` when we hold a copy (or saved edits) to catch up from. */
  private requestFile(file: string): void {
    const doc = this.docs.get(file);
    const since = doc ? doc.client.rev : store.pending(file)?.rev;
    if (since === undefined) {
      this.send({ type: "open", file });
      return;
    }
    if (doc) doc.catchingUp = true;
    this.awaitingSince.set(file, since);
    this.send({ type: "open", file, since });
  }

  private onDocument(message: Extract<ServerMessage, { type: "document" }>): void {
    let doc = this.docs.get(message.file);
    const pending = doc ? doc.pending() : store.pending(message.file);
    if (!doc) {
      doc = new SharedDocument(message.file, message.rev, message.text, this.connection.clientId, {
        send: (m) => this.send(m),
        pendingChanged: (file, state) => {
          store.setPending(file, state);
          this.countUnsent();
        },
        nameOf: (userId) => this.people.nameOf(userId),
      });
      this.docs.set(message.file, doc);
    }
    doc.catchingUp = this.awaitingSince.has(message.file);
    const lost = doc.reset(message.rev, message.text, pending, message.last_seq);
    if (lost) {
      this.toast(`Some unsent edits to ${message.file} could not be merged after the reconnect.`, "error");
    }
    if (!this.tabs.includes(message.file)) this.tabs.push(message.file);
    if (this.active === message.file || !this.active) this.showTab(message.file);
    this.renderTabs();
  }

  private countUnsent(): void {
    this.unsent = [...this.docs.values()].filter((d) => d.client.hasPending).length;
    $("#unsent").textContent = this.unsent ? `${this.unsent} file(s) with unsent edits` : "";
  }

  openFile(file: string, focus = true): void {
    if (!this.docs.has(file)) {
      if (!this.tabs.includes(file)) this.tabs.push(file);
      this.active = file;
      this.requestFile(file);
    } else {
      this.showTab(file);
    }
    if (focus) this.editor.focus();
    this.renderTabs();
  }

  private showTab(file: string): void {
    this.active = file;
    this.tree.activeFile = file;
    const doc = this.docs.get(file);
    if (doc && this.editor.getModel() !== doc.model) {
      this.editor.setModel(doc.model);
      this.sendViewport();
    }
    store.setTabs(this.tabs, this.active);
    this.renderTabs();
    this.tree.render();
  }

  private closeTab(file: string, tellServer = true): void {
    const index = this.tabs.indexOf(file);
    if (index >= 0) this.tabs.splice(index, 1);
    const doc = this.docs.get(file);
    if (doc && !doc.client.hasPending) {
      if (this.editor.getModel() === doc.model) this.editor.setModel(null);
      doc.dispose();
      this.docs.delete(file);
      if (tellServer) this.send({ type: "close", file });
    }
    if (this.active === file) {
      this.active = this.tabs[Math.max(0, index - 1)] ?? null;
      if (this.active) this.showTab(this.active);
    }
    store.setTabs(this.tabs, this.active);
    this.renderTabs();
  }

  private renderTabs(): void {
    const bar = $("#tabs");
    bar.replaceChildren(
      ...this.tabs.map((file) => {
        const tab = document.createElement("div");
        tab.className = "tab";
        tab.dataset.file = file;
        tab.setAttribute("role", "tab");
        tab.classList.toggle("active", file === this.active);
        tab.title = file;
        const name = document.createElement("span");
        name.textContent = file.split("/").pop()!;
        const close = document.createElement("button");
        close.textContent = "×";
        close.title = `Close ${file}`;
        close.onclick = (e) => {
          e.stopPropagation();
          this.closeTab(file);
        };
        tab.onclick = () => this.showTab(file);
        tab.append(name, close);
        return tab;
      }),
    );
    $("#empty").hidden = this.tabs.length > 0;
  }

  private bindEditor(): void {
    const editor = this.editor;
    const current = () => (this.active ? this.docs.get(this.active) : undefined);
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyZ, () => current()?.undoRedo(false));
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyMod.Shift | monaco.KeyCode.KeyZ, () => current()?.undoRedo(true));
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyY, () => current()?.undoRedo(true));
    let cursorTimer: number | undefined;
    editor.onDidChangeCursorSelection(() => {
      window.clearTimeout(cursorTimer);
      cursorTimer = window.setTimeout(() => {
        const doc = current();
        const selections = editor.getSelections();
        if (!doc || !selections || editor.getModel() !== doc.model) return;
        this.send(
          doc.selectionMessage(
            selections.map((s) => ({
              anchor: { lineNumber: s.selectionStartLineNumber, column: s.selectionStartColumn },
              head: { lineNumber: s.positionLineNumber, column: s.positionColumn },
            })),
          ),
        );
      }, 40);
    });
    let scrollTimer: number | undefined;
    editor.onDidScrollChange(() => {
      window.clearTimeout(scrollTimer);
      scrollTimer = window.setTimeout(() => this.sendViewport(), 120);
    });
    // Acting yourself ends following someone.
    const stopFollowing = () => {
      if (this.people.following) this.people.follow(null);
    };
    const node = $("#editor");
    node.addEventListener("keydown", stopFollowing, true);
    node.addEventListener("mousedown", stopFollowing, true);
    node.addEventListener("wheel", stopFollowing, { capture: true, passive: true });
    $("#files").addEventListener("mousedown", stopFollowing, true);
    $("#tabs").addEventListener("mousedown", stopFollowing, true);
  }

  private sendViewport(): void {
    const ranges = this.editor.getVisibleRanges();
    if (!this.active || !ranges.length) return;
    this.send({ type: "viewport", file: this.active, top_line: ranges[0].startLineNumber - 1 });
  }

  private followChanged(userId: string | null): void {
    $("#following").textContent = userId ? `Following ${this.people.nameOf(userId)} — type or click to stop` : "";
    if (!userId) return;
    // Jump to where they are now, if we know it.
    for (const [file, doc] of this.docs) {
      const at = doc.cursorPosition(userId);
      if (at) {
        this.showTab(file);
        this.editor.revealPositionInCenter(at);
        break;
      }
    }
  }

  private async download(path: string): Promise<void> {
    const token = this.connection.me?.token;
    const response = await fetch(new URL(`files/${path.split("/").map(encodeURIComponent).join("/")}`, location.href), {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok) {
      this.toast(`Could not download ${path}: ${response.status}`, "error");
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = path.split("/").pop()!;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }

  toast(text: string, kind: "notice" | "error"): void {
    const box = document.createElement("div");
    box.className = `toast ${kind}`;
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = text;
    $("#toasts").appendChild(box);
    setTimeout(() => box.remove(), kind === "error" ? 8000 : 15000);
  }

  inviteToken(): string | undefined {
    return this.connection.me?.token;
  }

  sessionId(): string | undefined {
    return this.connection.me?.sessionId;
  }
}

const app = new App();
$("#invite").onclick = () => showInvites(app.sessionId(), app.inviteToken(), (t) => app.toast(t, "error"));
