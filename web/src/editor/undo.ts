// Undo that undoes only your own edits (as ot.js's UndoManager): each local edit pushes its
// inverse; everyone else's edits transform the stacks, so an undo still removes exactly what
// you typed, wherever it has moved to.

import { TextOperation } from "../ot/operation";

/** Edits closer together than this undo as one step (a typed word, not each letter). */
const GROUP_MS = 700;

export type UndoMode = "normal" | "undoing" | "redoing";

export class UndoManager {
  private undoStack: TextOperation[] = [];
  private redoStack: TextOperation[] = [];
  private lastAt = 0;
  mode: UndoMode = "normal";

  constructor(private readonly limit = 200) {}

  /** A local edit was made; `inverse` undoes it. */
  record(inverse: TextOperation, now = Date.now()): void {
    if (this.mode === "undoing") {
      this.redoStack.push(inverse);
      return;
    }
    if (this.mode === "redoing") {
      this.undoStack.push(inverse);
      return;
    }
    const top = this.undoStack[this.undoStack.length - 1];
    if (top && now - this.lastAt < GROUP_MS) {
      // Undo the newest edit first, then the older group.
      this.undoStack[this.undoStack.length - 1] = TextOperation.compose(inverse, top);
    } else {
      this.undoStack.push(inverse);
      if (this.undoStack.length > this.limit) this.undoStack.shift();
    }
    this.lastAt = now;
    this.redoStack = [];
  }

  /** Someone else's edit, as applied to our text. */
  transform(remote: TextOperation): void {
    this.undoStack = transformStack(this.undoStack, remote);
    this.redoStack = transformStack(this.redoStack, remote);
    this.lastAt = 0;
  }

  canUndo(): boolean {
    return this.undoStack.length > 0;
  }

  canRedo(): boolean {
    return this.redoStack.length > 0;
  }

  /** The op to apply for an undo (apply it with `mode` set to "undoing"). */
  takeUndo(): TextOperation | undefined {
    this.lastAt = 0;
    return this.undoStack.pop();
  }

  takeRedo(): TextOperation | undefined {
    this.lastAt = 0;
    return this.redoStack.pop();
  }
}

function transformStack(stack: TextOperation[], remote: TextOperation): TextOperation[] {
  const out: TextOperation[] = [];
  // The newest entry applies to the current text; each older one to the text after the
  // newer ones were undone, so the remote op is carried down the stack as it transforms.
  for (let i = stack.length - 1; i >= 0; i--) {
    const [mine, theirs] = TextOperation.transform(stack[i], remote);
    if (!mine.isNoop()) out.push(mine);
    remote = theirs;
  }
  return out.reverse();
}
