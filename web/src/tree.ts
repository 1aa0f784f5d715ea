// The workspace's file tree: built from the agent's entries and kept current by its
// `file_changed` events (from the UI and from the disk alike). Writers create, rename, move
// (drag a row onto a folder) and delete; binary files are offered as downloads.

import type { ClientMessage, FileChange, TreeEntry } from "./protocol";

export interface TreeHost {
  send(message: ClientMessage): void;
  openFile(path: string): void;
  download(path: string): void;
  canWrite(): boolean;
}

export class FileTree {
  private entries = new Map<string, TreeEntry>();
  private collapsed = new Set<string>();
  /** The folder new files go into. */
  private folder = "";
  private readonly list: HTMLElement;
  private readonly toolbar: HTMLElement;
  activeFile: string | null = null;

  constructor(
    private readonly root: HTMLElement,
    private readonly host: TreeHost,
  ) {
    root.innerHTML = `
      <div class="panel-title">Files
        <span class="tree-actions">
          <button class="tree-new-file" title="New file">+ file</button>
          <button class="tree-new-dir" title="New folder">+ folder</button>
        </span>
      </div>
      <div class="tree-input" hidden><input aria-label="Name" spellcheck="false"></div>
      <ul class="tree" role="tree"></ul>`;
    this.list = root.querySelector(".tree")!;
    this.toolbar = root.querySelector(".tree-actions")!;
    root.querySelector<HTMLButtonElement>(".tree-new-file")!.onclick = () => this.ask("file");
    root.querySelector<HTMLButtonElement>(".tree-new-dir")!.onclick = () => this.ask("dir");
    // Dropping on the empty area moves to the workspace root.
    this.list.addEventListener("dragover", (e) => e.preventDefault());
    this.list.addEventListener("drop", (e) => this.drop(e, ""));
  }

  reset(entries: TreeEntry[]): void {
    this.entries = new Map(entries.map((e) => [e.path, e]));
    this.render();
  }

  change(change: FileChange): void {
    switch (change.kind) {
      case "created":
        this.entries.set(change.entry.path, change.entry);
        break;
      case "deleted":
        for (const path of [...this.entries.keys()]) {
          if (path === change.path || path.startsWith(change.path + "/")) this.entries.delete(path);
        }
        break;
      case "renamed":
        for (const [path, entry] of [...this.entries]) {
          if (path === change.from || path.startsWith(change.from + "/")) {
            this.entries.delete(path);
            const moved = change.to + path.slice(change.from.length);
            this.entries.set(moved, { ...entry, path: moved });
          }
        }
        break;
      case "modified":
        break;
    }
    this.render();
  }

  entry(path: string): TreeEntry | undefined {
    return this.entries.get(path);
  }

  render(): void {
    this.toolbar.hidden = !this.host.canWrite();
    const children = new Map<string, TreeEntry[]>();
    for (const entry of this.entries.values()) {
      const parent = parentOf(entry.path);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent)!.push(entry);
    }
    const build = (parent: string, depth: number): HTMLElement[] => {
      const items = (children.get(parent) ?? []).sort(
        (a, b) => Number(b.kind === "dir") - Number(a.kind === "dir") || a.path.localeCompare(b.path),
      );
      return items.flatMap((entry) => {
        const row = this.row(entry, depth);
        if (entry.kind === "dir" && !this.collapsed.has(entry.path)) return [row, ...build(entry.path, depth + 1)];
        return [row];
      });
    };
    this.list.replaceChildren(...build("", 0));
  }

  private row(entry: TreeEntry, depth: number): HTMLElement {
    const li = document.createElement("li");
    li.className = `tree-row ${entry.kind}`;
    li.setAttribute("role", "treeitem");
    li.dataset.path = entry.path;
    li.style.paddingLeft = `${0.6 + depth * 0.9}em`;
    li.classList.toggle("active", entry.path === this.activeFile);
    li.classList.toggle("binary", entry.kind === "file" && entry.binary);
    const icon = entry.kind === "dir" ? (this.collapsed.has(entry.path) ? "▸" : "▾") : entry.binary ? "⬇" : "·";
    const name = entry.path.split("/").pop()!;
    li.innerHTML = `<span class="tree-icon"></span><span class="tree-name"></span><span class="tree-row-actions"></span>`;
    li.querySelector(".tree-icon")!.textContent = icon;
    li.querySelector(".tree-name")!.textContent = name;
    li.title = entry.binary ? `${entry.path} (binary: click to download)` : entry.path;
    li.onclick = () => {
      if (entry.kind === "dir") {
        this.folder = entry.path;
        if (this.collapsed.has(entry.path)) this.collapsed.delete(entry.path);
        else this.collapsed.add(entry.path);
        this.render();
      } else {
        this.folder = parentOf(entry.path);
        if (entry.binary) this.host.download(entry.path);
        else this.host.openFile(entry.path);
      }
    };
    if (this.host.canWrite()) {
      const actions = li.querySelector(".tree-row-actions")!;
      const rename = button("✎", `Rename ${name}`, () => this.rename(entry.path));
      const remove = button("✕", `Delete ${name}`, () => {
        if (confirm(`Delete ${entry.path}?`)) this.host.send({ type: "delete", path: entry.path });
      });
      actions.append(rename, remove);
      li.draggable = true;
      li.addEventListener("dragstart", (e) => {
        e.dataTransfer?.setData("application/x-huddle-path", entry.path);
        e.dataTransfer!.effectAllowed = "move";
      });
      li.addEventListener("dblclick", (e) => {
        e.stopPropagation();
        this.rename(entry.path);
      });
      if (entry.kind === "dir") {
        li.addEventListener("dragover", (e) => {
          e.preventDefault();
          li.classList.add("drop-target");
        });
        li.addEventListener("dragleave", () => li.classList.remove("drop-target"));
        li.addEventListener("drop", (e) => this.drop(e, entry.path));
      }
    }
    return li;
  }

  private drop(e: DragEvent, folder: string): void {
    e.preventDefault();
    e.stopPropagation();
    const from = e.dataTransfer?.getData("application/x-huddle-path");
    if (!from || !this.host.canWrite()) return;
    const to = (folder ? folder + "/" : "") + from.split("/").pop();
    if (to !== from && !to.startsWith(from + "/")) this.host.send({ type: "rename", from, to });
  }

  private rename(path: string): void {
    this.ask("rename", path);
  }

  /** Shows the name box: for a new file or folder in the current folder, or a new path. */
  private ask(what: "file" | "dir" | "rename", path = ""): void {
    const box = this.root.querySelector<HTMLElement>(".tree-input")!;
    const input = box.querySelector("input")!;
    box.hidden = false;
    input.value = what === "rename" ? path : this.folder ? this.folder + "/" : "";
    input.placeholder = what === "dir" ? "folder/path" : "path/to/file.txt";
    input.focus();
    const done = (commit: boolean) => {
      box.hidden = true;
      input.onkeydown = null;
      input.onblur = null;
      const value = input.value.trim().replace(/^\/+/, "");
      if (!commit || !value) return;
      if (what === "file") this.host.send({ type: "create_file", path: value });
      else if (what === "dir") this.host.send({ type: "create_dir", path: value });
      else if (value !== path) this.host.send({ type: "rename", from: path, to: value });
    };
    input.onkeydown = (e) => {
      if (e.key === "Enter") done(true);
      if (e.key === "Escape") done(false);
    };
    input.onblur = () => done(false);
  }
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

function button(text: string, title: string, action: () => void): HTMLButtonElement {
  const b = document.createElement("button");
  b.textContent = text;
  b.title = title;
  b.setAttribute("aria-label", title);
  b.onclick = (e) => {
    e.stopPropagation();
    action();
  };
  return b;
}
