// Text operations in the ot.js wire form, measured in Unicode code points: the TypeScript twin
// of `ot/src/operation.rs`. Both are tested against `ot/src/golden/transform.json`, so the
// browser and the agent break every tie the same way.
//
// An operation is a normalized list of components: a positive number keeps that many
// characters, a string inserts it, a negative number deletes that many. Normalized means no
// empty components, no two adjacent ones of the same kind, and an insert always before a delete
// at the same position, so equal effects have equal JSON.

export type Component = number | string;

/** Code points in `s` (a surrogate pair is one). */
export function cpLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** The UTF-16 index reached by walking `n` code points forward from `from` in `s`. */
export function advance(s: string, from: number, n: number): number {
  let i = from;
  while (n > 0 && i < s.length) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && isLow(s.charCodeAt(i + 1)) ? 2 : 1;
    n--;
  }
  if (n > 0) throw new OtError(`text is ${n} code points shorter than the operation`);
  return i;
}

function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** The code-point index of UTF-16 index `utf16` in `s`. */
export function cpIndex(s: string, utf16: number): number {
  return cpLength(s.slice(0, utf16));
}

export class OtError extends Error {}

export class TextOperation {
  readonly ops: Component[] = [];
  /** Length of the document it applies to. */
  baseLength = 0;
  /** Length of the document it produces. */
  targetLength = 0;

  static fromJSON(json: unknown): TextOperation {
    if (!Array.isArray(json)) throw new OtError("an operation is a JSON array");
    const op = new TextOperation();
    for (const c of json) {
      if (typeof c === "string") {
        if (c === "") throw new OtError("empty insert");
        op.insert(c);
      } else if (typeof c === "number" && Number.isSafeInteger(c) && c !== 0) {
        if (c > 0) op.retain(c);
        else op.delete(-c);
      } else {
        throw new OtError(`invalid component ${JSON.stringify(c)}`);
      }
    }
    return op;
  }

  toJSON(): Component[] {
    return this.ops.slice();
  }

  retain(n: number): this {
    if (n === 0) return this;
    this.baseLength += n;
    this.targetLength += n;
    const last = this.ops.length - 1;
    if (last >= 0 && isRetain(this.ops[last])) (this.ops[last] as number) += n;
    else this.ops.push(n);
    return this;
  }

  insert(s: string): this {
    if (s === "") return this;
    this.targetLength += cpLength(s);
    const ops = this.ops;
    const last = ops.length - 1;
    if (last >= 0 && typeof ops[last] === "string") {
      ops[last] = (ops[last] as string) + s;
    } else if (last >= 0 && isDelete(ops[last])) {
      // An insert is kept in front of a delete at the same position (the canonical order).
      if (last >= 1 && typeof ops[last - 1] === "string") ops[last - 1] = (ops[last - 1] as string) + s;
      else ops.splice(last, 0, s);
    } else {
      ops.push(s);
    }
    return this;
  }

  delete(n: number): this {
    if (n === 0) return this;
    this.baseLength += n;
    const last = this.ops.length - 1;
    if (last >= 0 && isDelete(this.ops[last])) (this.ops[last] as number) -= n;
    else this.ops.push(-n);
    return this;
  }

  isNoop(): boolean {
    return this.ops.length === 0 || (this.ops.length === 1 && isRetain(this.ops[0]));
  }

  equals(other: TextOperation): boolean {
    return (
      this.ops.length === other.ops.length && this.ops.every((c, i) => c === other.ops[i])
    );
  }

  apply(text: string): string {
    if (cpLength(text) !== this.baseLength) {
      throw new OtError(
        `operation is for a ${this.baseLength}-character text, not ${cpLength(text)}`,
      );
    }
    const out: string[] = [];
    let at = 0;
    for (const c of this.ops) {
      if (isRetain(c)) {
        const next = advance(text, at, c);
        out.push(text.slice(at, next));
        at = next;
      } else if (typeof c === "string") {
        out.push(c);
      } else {
        at = advance(text, at, -c);
      }
    }
    return out.join("");
  }

  /** The operation that undoes this one, given the text it was applied to. */
  invert(text: string): TextOperation {
    const inverse = new TextOperation();
    let at = 0;
    for (const c of this.ops) {
      if (isRetain(c)) {
        inverse.retain(c);
        at = advance(text, at, c);
      } else if (typeof c === "string") {
        inverse.delete(cpLength(c));
      } else {
        const next = advance(text, at, -c);
        inverse.insert(text.slice(at, next));
        at = next;
      }
    }
    return inverse;
  }

  /** One operation with the effect of `a` then `b`. */
  static compose(a: TextOperation, b: TextOperation): TextOperation {
    if (a.targetLength !== b.baseLength) {
      throw new OtError("compose: the first operation's target is not the second's base");
    }
    const out = new TextOperation();
    const ia = new Cursor(a.ops);
    const ib = new Cursor(b.ops);
    for (;;) {
      const c1 = ia.peek();
      const c2 = ib.peek();
      if (c1 === undefined && c2 === undefined) break;
      if (c1 !== undefined && isDelete(c1)) {
        out.delete(-c1);
        ia.next();
        continue;
      }
      if (typeof c2 === "string") {
        out.insert(c2);
        ib.next();
        continue;
      }
      if (c1 === undefined || c2 === undefined) throw new OtError("compose: lengths differ");
      if (isRetain(c1) && isRetain(c2)) {
        const m = Math.min(c1, c2);
        out.retain(m);
        ia.take(m);
        ib.take(m);
      } else if (isRetain(c1) && isDelete(c2)) {
        const m = Math.min(c1, -c2);
        out.delete(m);
        ia.take(m);
        ib.take(m);
      } else if (typeof c1 === "string" && isRetain(c2)) {
        const m = Math.min(cpLength(c1), c2);
        out.insert(ia.takeText(m));
        ib.take(m);
      } else if (typeof c1 === "string" && isDelete(c2)) {
        // `b` deletes what `a` inserted: both vanish.
        const m = Math.min(cpLength(c1), -c2);
        ia.takeText(m);
        ib.take(m);
      }
    }
    return out;
  }

  /**
   * Transforms concurrent `a` and `b` (same base) into `[a', b']` with
   * `b'(a(doc)) == a'(b(doc))`. Ties go to `a`: its insert ends up first. Pass the operation the
   * server sequenced later as `a` (our unacknowledged one against a server op).
   */
  static transform(a: TextOperation, b: TextOperation): [TextOperation, TextOperation] {
    if (a.baseLength !== b.baseLength) {
      throw new OtError("transform: both operations must apply to the same text");
    }
    const ap = new TextOperation();
    const bp = new TextOperation();
    const ia = new Cursor(a.ops);
    const ib = new Cursor(b.ops);
    for (;;) {
      const c1 = ia.peek();
      const c2 = ib.peek();
      if (c1 === undefined && c2 === undefined) break;
      if (typeof c1 === "string") {
        bp.retain(cpLength(c1));
        ap.insert(c1);
        ia.next();
        continue;
      }
      if (typeof c2 === "string") {
        ap.retain(cpLength(c2));
        bp.insert(c2);
        ib.next();
        continue;
      }
      if (c1 === undefined || c2 === undefined) throw new OtError("transform: lengths differ");
      const m = Math.min(Math.abs(c1), Math.abs(c2));
      if (isRetain(c1) && isRetain(c2)) {
        ap.retain(m);
        bp.retain(m);
      } else if (isDelete(c1) && isDelete(c2)) {
        // Both deleted it: neither deletes it again.
      } else if (isDelete(c1)) {
        ap.delete(m);
      } else {
        bp.delete(m);
      }
      ia.take(m);
      ib.take(m);
    }
    return [ap, bp];
  }
}

function isRetain(c: Component | undefined): c is number {
  return typeof c === "number" && c > 0;
}

function isDelete(c: Component | undefined): c is number {
  return typeof c === "number" && c < 0;
}

/** Walks a component list, splitting counted components and inserts when only part is used. */
class Cursor {
  private i = 0;
  private current: Component | undefined;

  constructor(private readonly ops: Component[]) {
    this.current = ops[0];
  }

  peek(): Component | undefined {
    return this.current;
  }

  next(): void {
    this.i++;
    this.current = this.ops[this.i];
  }

  /** Uses `n` of the current retain or delete. */
  take(n: number): void {
    const c = this.current as number;
    const left = Math.abs(c) - n;
    if (left === 0) this.next();
    else this.current = c > 0 ? left : -left;
  }

  /** Uses the first `n` code points of the current insert, returning them. */
  takeText(n: number): string {
    const s = this.current as string;
    const cut = advance(s, 0, n);
    if (cut === s.length) this.next();
    else this.current = s.slice(cut);
    return s.slice(0, cut);
  }
}

/**
 * Where the code-point position `index` is after `op`: the walk of ot.js `transformIndex`, like
 * `ot/src/cursor.rs`. `after` decides text inserted exactly at the position (pushed past it).
 */
export function transformIndex(index: number, op: TextOperation, after = true): number {
  index = Math.min(index, op.baseLength);
  let newIndex = index;
  let pos = 0;
  for (const c of op.ops) {
    if (isRetain(c)) {
      pos += c;
      if (pos > index) break;
    } else if (typeof c === "string") {
      if (pos < index || after) newIndex += cpLength(c);
      else break;
    } else {
      const n = -c;
      newIndex -= Math.min(pos + n, index) - pos;
      pos += n;
      if (pos > index) break;
    }
  }
  return newIndex;
}
