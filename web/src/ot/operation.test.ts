import { describe, expect, it } from "vitest";
import golden from "../../../ot/src/golden/transform.json";
import { advance, cpLength, TextOperation, transformIndex } from "./operation";

interface Case {
  name: string;
  doc: string;
  a: unknown;
  b: unknown;
  a_prime: unknown;
  b_prime: unknown;
  result: string;
}

describe("transform, against the cases the Rust side is tested with", () => {
  const cases = golden as Case[];
  it("has the golden cases", () => expect(cases.length).toBeGreaterThanOrEqual(10));
  for (const c of cases) {
    it(c.name, () => {
      const a = TextOperation.fromJSON(c.a);
      const b = TextOperation.fromJSON(c.b);
      // The golden file is in canonical form: parsing and printing changes nothing.
      expect(a.toJSON()).toEqual(c.a);
      expect(b.toJSON()).toEqual(c.b);
      const [ap, bp] = TextOperation.transform(a, b);
      expect(ap.toJSON()).toEqual(c.a_prime);
      expect(bp.toJSON()).toEqual(c.b_prime);
      expect(bp.apply(a.apply(c.doc))).toBe(c.result);
      expect(ap.apply(b.apply(c.doc))).toBe(c.result);
    });
  }
});

describe("operations", () => {
  it("counts code points, not UTF-16 units", () => {
    expect(cpLength("a😀é")).toBe(3);
    expect(advance("😀x", 0, 1)).toBe(2);
    const op = TextOperation.fromJSON([1, "!", 1]);
    expect(op.apply("😀😀")).toBe("😀!😀");
  });

  it("normalizes an insert after a delete to the front", () => {
    const op = new TextOperation().retain(1).delete(2).insert("x");
    expect(op.toJSON()).toEqual([1, "x", -2]);
  });

  it("refuses ops that do not fit the text and malformed JSON", () => {
    expect(() => TextOperation.fromJSON([5]).apply("abc")).toThrow();
    for (const bad of [{}, [0], [""], [1.5], [null], "x"]) {
      expect(() => TextOperation.fromJSON(bad)).toThrow();
    }
  });

  it("moves positions like ot.js transformIndex", () => {
    const op = TextOperation.fromJSON([2, "XY", -1, 3]);
    expect(transformIndex(0, op)).toBe(0);
    expect(transformIndex(2, op)).toBe(4);
    expect(transformIndex(2, op, false)).toBe(2);
    expect(transformIndex(3, op)).toBe(4);
    expect(transformIndex(6, op)).toBe(7);
  });
});

/** A small deterministic generator, so a failure is reproducible from its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ALPHABET = ["a", "b", " ", "\n", "é", "😀", "漢"];

function randomText(r: () => number, max: number): string {
  let s = "";
  const n = Math.floor(r() * max);
  for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
  return s;
}

function randomOp(r: () => number, text: string): TextOperation {
  const op = new TextOperation();
  let left = cpLength(text);
  while (left > 0) {
    const n = 1 + Math.floor(r() * Math.min(left, 4));
    const k = r();
    if (k < 0.25) op.insert(randomText(r, 4) || "x");
    if (k < 0.5) op.retain(n);
    else if (k < 0.75) op.delete(n);
    else op.retain(n);
    left -= n;
  }
  if (r() < 0.4) op.insert(randomText(r, 3) || "y");
  return op;
}

describe("properties over random operations", () => {
  it("transform converges, compose equals sequential apply, invert undoes", () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const r = rng(seed);
      const doc = randomText(r, 12);
      const a = randomOp(r, doc);
      const b = randomOp(r, doc);
      const [ap, bp] = TextOperation.transform(a, b);
      expect(bp.apply(a.apply(doc)), `seed ${seed}`).toBe(ap.apply(b.apply(doc)));
      const afterA = a.apply(doc);
      const c = randomOp(r, afterA);
      expect(TextOperation.compose(a, c).apply(doc), `seed ${seed}`).toBe(c.apply(afterA));
      expect(a.invert(doc).apply(afterA), `seed ${seed}`).toBe(doc);
      // Wire form round-trips.
      expect(TextOperation.fromJSON(JSON.parse(JSON.stringify(a))).equals(a)).toBe(true);
    }
  });
});
