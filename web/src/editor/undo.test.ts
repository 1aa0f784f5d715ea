import { describe, expect, it } from "vitest";
import { TextOperation } from "../ot/operation";
import { UndoManager } from "./undo";

const op = (json: unknown) => TextOperation.fromJSON(json);

describe("UndoManager", () => {
  it("undoes only my edits, after someone else's moved them", () => {
    const undo = new UndoManager();
    let text = "hello";
    // I type " world" at the end.
    const mine = op([5, " world"]);
    undo.record(mine.invert(text), 0);
    text = mine.apply(text);
    // Someone inserts at the front.
    const theirs = op(["> ", 11]);
    text = theirs.apply(text);
    undo.transform(theirs);
    const inverse = undo.takeUndo()!;
    undo.mode = "undoing";
    undo.record(inverse.invert(text), 10_000);
    undo.mode = "normal";
    text = inverse.apply(text);
    expect(text).toBe("> hello");
    // Redo brings mine back, still after theirs.
    const redo = undo.takeRedo()!;
    expect(redo.apply(text)).toBe("> hello world");
  });

  it("groups quick keystrokes and starts a new group after a pause", () => {
    const undo = new UndoManager();
    let text = "";
    for (const [i, ch] of ["a", "b", "c"].entries()) {
      const o = new TextOperation().retain(text.length).insert(ch);
      undo.record(o.invert(text), i * 100);
      text = o.apply(text);
    }
    const later = new TextOperation().retain(3).insert("!");
    undo.record(later.invert(text), 5_000);
    text = later.apply(text);
    text = undo.takeUndo()!.apply(text);
    expect(text).toBe("abc");
    text = undo.takeUndo()!.apply(text);
    expect(text).toBe("");
    expect(undo.canUndo()).toBe(false);
  });

  it("drops an undo whose text someone else already deleted", () => {
    const undo = new UndoManager();
    const mine = op([2, "XY"]);
    undo.record(mine.invert("ab"), 0);
    const theirs = op([-4]); // deletes everything, including XY
    undo.transform(theirs);
    expect(undo.canUndo()).toBe(false);
  });
});
