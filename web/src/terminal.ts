// Shared terminals: one xterm.js per agent terminal, painted from the agent's snapshot and
// then its output stream. Writers type and resize (fit to their panel); viewers watch.

import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { fromBase64, type ClientMessage } from "./protocol";

interface Pane {
  id: number;
  term: Terminal;
  fit: FitAddon;
  element: HTMLElement;
  tab: HTMLButtonElement;
  exited: boolean;
}

export class Terminals {
  private panes = new Map<number, Pane>();
  private active: number | null = null;
  private readonly tabs: HTMLElement;
  private readonly body: HTMLElement;
  private readonly observer: ResizeObserver;
  canWrite = false;

  constructor(
    root: HTMLElement,
    private readonly send: (message: ClientMessage) => void,
  ) {
    root.innerHTML = `<div class="term-tabs" role="tablist"></div><div class="term-body"></div>`;
    this.tabs = root.querySelector(".term-tabs")!;
    this.body = root.querySelector(".term-body")!;
    this.observer = new ResizeObserver(() => this.fitActive());
    this.observer.observe(this.body);
  }

  /** After (re)joining: the agent's terminals, attached again. */
  welcome(ids: number[], canWrite: boolean): void {
    this.canWrite = canWrite;
    this.renderNewButton();
    for (const [id, pane] of this.panes) {
      if (!ids.includes(id)) this.remove(id);
      else pane.term.options.disableStdin = !canWrite;
    }
    for (const id of ids) {
      this.ensure(id);
      this.send({ type: "terminal_attach", id });
    }
    if (ids.length === 0 && canWrite) this.open();
  }

  open(): void {
    const { cols, rows } = this.sizeGuess();
    this.send({ type: "terminal_open", cols, rows });
  }

  opened(id: number): void {
    const known = this.panes.has(id);
    this.ensure(id);
    if (!known) this.send({ type: "terminal_attach", id });
    this.show(id);
  }

  snapshot(id: number, cols: number, rows: number, data: string): void {
    const pane = this.ensure(id);
    pane.term.reset();
    if (pane.term.cols !== cols || pane.term.rows !== rows) pane.term.resize(cols, rows);
    pane.term.write(fromBase64(data));
  }

  output(id: number, data: string): void {
    this.panes.get(id)?.term.write(fromBase64(data));
  }

  exited(id: number): void {
    const pane = this.panes.get(id);
    if (!pane) return;
    pane.exited = true;
    pane.term.write("\r\n\x1b[2m[the shell has exited]\x1b[0m\r\n");
    pane.tab.classList.add("exited");
  }

  /** The visible text of a terminal (for tests and screen readers). */
  text(id: number): string {
    const buffer = this.panes.get(id)?.term.buffer.active;
    if (!buffer) return "";
    const lines: string[] = [];
    for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
    return lines.join("\n");
  }

  private ensure(id: number): Pane {
    let pane = this.panes.get(id);
    if (pane) return pane;
    const term = new Terminal({
      convertEol: false,
      disableStdin: !this.canWrite,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', monospace",
      fontSize: 13,
      scrollback: 1000,
      theme: { background: "#11151c" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    const element = document.createElement("div");
    element.className = "term-pane";
    element.dataset.terminal = String(id);
    this.body.appendChild(element);
    term.open(element);
    term.onData((data) => {
      if (this.canWrite && !pane!.exited) this.send({ type: "terminal_input", id, data });
    });
    const tab = document.createElement("button");
    tab.className = "term-tab";
    tab.textContent = `Terminal ${id}`;
    tab.setAttribute("role", "tab");
    tab.onclick = () => this.show(id);
    this.tabs.insertBefore(tab, this.tabs.querySelector(".term-new"));
    pane = { id, term, fit, element, tab, exited: false };
    this.panes.set(id, pane);
    if (this.active === null) this.show(id);
    return pane;
  }

  private remove(id: number): void {
    const pane = this.panes.get(id);
    if (!pane) return;
    pane.term.dispose();
    pane.element.remove();
    pane.tab.remove();
    this.panes.delete(id);
    if (this.active === id) this.active = null;
  }

  private show(id: number): void {
    this.active = id;
    for (const pane of this.panes.values()) {
      const on = pane.id === id;
      pane.element.hidden = !on;
      pane.tab.classList.toggle("active", on);
      pane.tab.setAttribute("aria-selected", String(on));
    }
    this.fitActive();
  }

  /** Fit to the panel: writers resize the shared terminal to it; viewers keep its size. */
  private fitActive(): void {
    const pane = this.active === null ? undefined : this.panes.get(this.active);
    if (!pane || pane.element.hidden || !this.canWrite) return;
    const size = pane.fit.proposeDimensions();
    if (!size || !Number.isFinite(size.cols) || size.cols < 2 || size.rows < 2) return;
    if (size.cols === pane.term.cols && size.rows === pane.term.rows) return;
    pane.term.resize(size.cols, size.rows);
    this.send({ type: "terminal_resize", id: pane.id, cols: size.cols, rows: size.rows });
  }

  private sizeGuess(): { cols: number; rows: number } {
    const width = this.body.clientWidth || 800;
    const height = this.body.clientHeight || 300;
    return {
      cols: Math.max(20, Math.min(400, Math.floor(width / 8))),
      rows: Math.max(5, Math.min(200, Math.floor(height / 17))),
    };
  }

  private renderNewButton(): void {
    let button = this.tabs.querySelector<HTMLButtonElement>(".term-new");
    if (!button) {
      button = document.createElement("button");
      button.className = "term-new";
      button.textContent = "+";
      button.title = "New terminal";
      button.onclick = () => this.open();
      this.tabs.appendChild(button);
    }
    button.hidden = !this.canWrite;
  }
}
