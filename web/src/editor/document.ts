// One open file: its Monaco model kept in step with an OT client. Local edits become ops,
// remote ops become editor edits, other people's cursors become decorations, and undo only
// touches your own edits.

import type { editor as MonacoEditor, IDisposable } from "monaco-esm/editor/editor.api.js";
import { monaco } from "./monaco";
import { OtClient, type PendingState, type Submission } from "../ot/client";
import { advance, cpIndex, cpLength, TextOperation, transformIndex } from "../ot/operation";
import type { ClientMessage, Range } from "../protocol";
import { UndoManager } from "./undo";

export interface RemoteCursor {
  userId: string;
  name: string;
  color: string;
  /** Code-point offsets in the server's text at the client's revision. */
  ranges: { anchor: number; head: number }[];
}

export interface DocumentHost {
  send(message: ClientMessage): void;
  /** Called whenever the unacknowledged state changes, so it can be saved. */
  pendingChanged(file: string, state: PendingState | null): void;
  nameOf(userId: string): string;
}

export class SharedDocument {
  readonly model: MonacoEditor.ITextModel;
  client: OtClient;
  readonly undo = new UndoManager();
  private applyingRemote = false;
  private readonly listener: IDisposable;
  private cursors = new Map<string, RemoteCursor>();
  /** Ids of the remote-cursor decorations on the model (shown by any editor displaying it). */
  private decorationIds: string[] = [];
  /** Set after a reconnect until the catch-up ends: ops then go out only after it. */
  catchingUp = false;
  /** Whether the current in-flight op went out on this connection. */
  private sentOnThisConnection = false;

  constructor(
    readonly file: string,
    rev: number,
    text: string,
    clientId: string,
    private readonly host: DocumentHost,
  ) {
    this.client = new OtClient(clientId, rev, text);
    const uri = monaco.Uri.file("/" + file);
    monaco.editor.getModel(uri)?.dispose();
    this.model = monaco.editor.createModel(text, languageFor(file), uri);
    this.model.setEOL(monaco.editor.EndOfLineSequence.LF);
    this.listener = this.model.onDidChangeContent((event) => {
      if (this.applyingRemote) return;
      this.onLocalChange(event.changes);
    });
  }

  dispose(): void {
    this.listener.dispose();
    this.model.deltaDecorations(this.decorationIds, []);
    this.model.dispose();
  }

  /** The server's `document` after (re)opening: start over from it, putting back our
   * unacknowledged edits when they were made against that same revision. */
  reset(rev: number, text: string, saved: PendingState | null, lastSeq: number | null): boolean {
    const client = OtClient.restore(this.client.clientId, rev, text, saved, lastSeq);
    // Edits are lost only if they did not fit and the server had not already applied them.
    const lost =
      saved?.inflight != null &&
      client.inflight === null &&
      (saved.buffer != null || saved.inflight.seq > (lastSeq ?? 0));
    this.client = client;
    this.sentOnThisConnection = false;
    this.setModelText(client.text);
    this.host.pendingChanged(this.file, client.hasPending ? client.save() : null);
    return lost;
  }

  /** Current pending state (for a reconnect within the page). */
  pending(): PendingState | null {
    return this.client.hasPending ? this.client.save() : null;
  }

  /** The catch-up after a (re)open has ended: resend what the server has not acknowledged. */
  caughtUp(): void {
    this.catchingUp = false;
    if (!this.sentOnThisConnection) {
      const sub = this.client.resend();
      if (sub) this.submit(sub);
    }
  }

  private submit(sub: Submission): void {
    this.sentOnThisConnection = true;
    this.host.send({
      type: "op",
      file: this.file,
      base_rev: sub.baseRev,
      seq: sub.seq,
      op: sub.op.toJSON(),
    });
  }

  private setModelText(text: string): void {
    if (this.model.getValue() === text) return;
    this.applyingRemote = true;
    try {
      this.model.setValue(text);
    } finally {
      this.applyingRemote = false;
    }
  }

  private onLocalChange(changes: MonacoEditor.IModelContentChange[]): void {
    const before = this.client.text;
    const op = opFromChanges(before, changes);
    this.undo.record(op.invert(before));
    const sub = this.client.applyLocal(op);
    if (sub && !this.catchingUp) this.submit(sub);
    else if (sub) this.sentOnThisConnection = false;
    this.host.pendingChanged(this.file, this.pending());
    this.renderCursors();
  }

  /** An `op` message for this file. */
  serverOp(rev: number, clientId: string, seq: number, json: unknown): void {
    const before = this.client.text;
    const [next, theirs] = this.client.applyServer({
      rev,
      clientId,
      seq,
      op: TextOperation.fromJSON(json),
    });
    if (theirs) {
      this.undo.transform(theirs);
      this.applyToModel(before, theirs);
    }
    if (next) {
      if (this.catchingUp) this.sentOnThisConnection = false;
      else this.submit(next);
    }
    this.host.pendingChanged(this.file, this.pending());
    this.renderCursors();
  }

  /** Runs an undo or redo as a local edit. */
  undoRedo(redo: boolean): void {
    const op = redo ? this.undo.takeRedo() : this.undo.takeUndo();
    if (!op) return;
    this.undo.mode = redo ? "redoing" : "undoing";
    try {
      const edits = editsFor(this.model, this.client.text, op);
      this.model.pushEditOperations([], edits, () => null);
    } finally {
      this.undo.mode = "normal";
    }
  }

  private applyToModel(before: string, op: TextOperation): void {
    this.applyingRemote = true;
    try {
      this.model.applyEdits(editsFor(this.model, before, op));
    } finally {
      this.applyingRemote = false;
    }
    if (this.model.getValue() !== this.client.text) {
      // Cannot happen unless the editor rewrote line endings; resynchronize the view.
      this.setModelText(this.client.text);
    }
  }

  /** Someone's cursor, in line/column of the server's text at revision `rev`. */
  remoteCursor(userId: string, color: string, ranges: Range[]): void {
    const text = this.client.serverText;
    const index = (p: { line: number; column: number }) => lineColToIndex(text, p.line, p.column);
    this.cursors.set(userId, {
      userId,
      name: this.host.nameOf(userId),
      color,
      ranges: ranges.map((r) => ({ anchor: index(r.anchor), head: index(r.head) })),
    });
    this.renderCursors();
  }

  removeCursor(userId: string): void {
    if (this.cursors.delete(userId)) this.renderCursors();
  }

  /** Where a remote cursor is in our text (through our unacknowledged edits), as a position. */
  cursorPosition(userId: string): { lineNumber: number; column: number } | null {
    const cursor = this.cursors.get(userId);
    const head = cursor?.ranges[0]?.head;
    if (head === undefined) return null;
    return this.model.getPositionAt(this.toLocal(head));
  }

  private toLocal(serverIndex: number): number {
    let index = serverIndex;
    for (const op of this.client.pendingOps()) index = transformIndex(index, op);
    return advance(this.client.text, 0, Math.min(index, cpLength(this.client.text)));
  }

  private renderCursors(): void {
    const decorations: MonacoEditor.IModelDeltaDecoration[] = [];
    for (const cursor of this.cursors.values()) {
      const cls = cursorClass(cursor.userId, cursor.name, cursor.color);
      for (const range of cursor.ranges) {
        const anchor = this.model.getPositionAt(this.toLocal(range.anchor));
        const head = this.model.getPositionAt(this.toLocal(range.head));
        if (anchor.lineNumber !== head.lineNumber || anchor.column !== head.column) {
          decorations.push({
            range: monaco.Range.fromPositions(anchor, head),
            options: { className: `${cls}-selection`, stickiness: 1 },
          });
        }
        decorations.push({
          range: monaco.Range.fromPositions(head, head),
          options: {
            // The caret is an empty range: Monaco still renders its class, where the name
            // flag is drawn above the text by CSS (so it never shifts the line's characters).
            className: `remote-caret ${cls}-caret`,
            stickiness: 1,
            hoverMessage: { value: cursor.name },
            zIndex: 10,
          },
        });
      }
    }
    this.decorationIds = this.model.deltaDecorations(this.decorationIds, decorations);
  }

  /** Our selection, as the protocol's line/column in code points. */
  selectionMessage(selections: { anchor: { lineNumber: number; column: number }; head: { lineNumber: number; column: number } }[]): ClientMessage {
    const text = this.client.text;
    const pos = (p: { lineNumber: number; column: number }) => {
      const offset = this.model.getOffsetAt(p);
      const line = p.lineNumber - 1;
      const lineStart = this.model.getOffsetAt({ lineNumber: p.lineNumber, column: 1 });
      return { line, column: cpLength(text.slice(lineStart, offset)) };
    };
    return {
      type: "cursor",
      file: this.file,
      rev: this.client.rev,
      ranges: selections.slice(0, 100).map((s) => ({ anchor: pos(s.anchor), head: pos(s.head) })),
    };
  }
}

/** The op equivalent to one Monaco content change event over `before`. */
export function opFromChanges(
  before: string,
  changes: readonly { rangeOffset: number; rangeLength: number; text: string }[],
): TextOperation {
  const op = new TextOperation();
  let at = 0;
  for (const c of [...changes].sort((a, b) => a.rangeOffset - b.rangeOffset)) {
    op.retain(cpLength(before.slice(at, c.rangeOffset)));
    op.insert(c.text);
    op.delete(cpLength(before.slice(c.rangeOffset, c.rangeOffset + c.rangeLength)));
    at = c.rangeOffset + c.rangeLength;
  }
  op.retain(cpLength(before.slice(at)));
  return op;
}

/** Monaco edits (all against `text`, the model's current value) doing what `op` does. */
function editsFor(
  model: MonacoEditor.ITextModel,
  text: string,
  op: TextOperation,
): MonacoEditor.IIdentifiedSingleEditOperation[] {
  const edits: MonacoEditor.IIdentifiedSingleEditOperation[] = [];
  let at = 0;
  for (const c of op.ops) {
    if (typeof c === "string") {
      const p = model.getPositionAt(at);
      edits.push({ range: monaco.Range.fromPositions(p, p), text: c, forceMoveMarkers: true });
    } else if (c > 0) {
      at = advance(text, at, c);
    } else {
      const end = advance(text, at, -c);
      edits.push({
        range: monaco.Range.fromPositions(model.getPositionAt(at), model.getPositionAt(end)),
        text: "",
      });
      at = end;
    }
  }
  return edits;
}

/** Code-point index of line/column (both in code points, zero-based) in `text`. */
export function lineColToIndex(text: string, line: number, column: number): number {
  let start = 0;
  for (let l = 0; l < line; l++) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) return cpLength(text);
    start = nl + 1;
  }
  const end = text.indexOf("\n", start);
  const lineText = text.slice(start, end < 0 ? text.length : end);
  return cpIndex(text, start) + Math.min(column, cpLength(lineText));
}

const styled = new Map<string, string>();

/** A CSS class for a participant: their colour, and their name on the caret's flag. The rules
 * are added once per person; names become CSS strings with anything unsafe escaped. */
function cursorClass(userId: string, name: string, color: string): string {
  const key = `${userId}|${name}|${color}`;
  let cls = styled.get(key);
  if (cls) return cls;
  cls = `rc-${styled.size}`;
  styled.set(key, cls);
  const safeColor = /^#[0-9a-f]{3,8}$/i.test(color) ? color : "#888";
  const label = [...name].map((ch) => (/[\w .@-]/.test(ch) ? ch : `\\${ch.codePointAt(0)!.toString(16)} `)).join("");
  const style = document.createElement("style");
  style.textContent =
    `.${cls}-caret{border-left:2px solid ${safeColor};margin-left:-1px}` +
    `.${cls}-caret::after{content:"${label}";background:${safeColor}}` +
    `.${cls}-selection{background:${safeColor}40}`;
  document.head.appendChild(style);
  return cls;
}

/** Monaco's language id for a file name, from the extensions its grammars declare. */
export function languageFor(file: string): string {
  const name = file.split("/").pop() ?? file;
  const lower = name.toLowerCase();
  for (const language of monaco.languages.getLanguages()) {
    if (language.filenames?.some((f) => f.toLowerCase() === lower)) return language.id;
    if (language.extensions?.some((ext) => lower.endsWith(ext.toLowerCase()))) return language.id;
  }
  return "plaintext";
}
