import { describe, expect, it } from "vitest";
import { OtClient } from "./client";
import { TextOperation } from "./operation";

const op = (json: unknown) => TextOperation.fromJSON(json);
const applied = (rev: number, clientId: string, seq: number, o: unknown) => ({
  rev,
  clientId,
  seq,
  op: op(o),
});

describe("OtClient", () => {
  // The same walk as `walks_the_states` in ot/src/client.rs.
  it("walks the states: one op in flight, a buffer, transform, ack", () => {
    const c = new OtClient("me", 0, "ab");
    const sub = c.applyLocal(op(["1", 2]));
    expect(sub && [sub.seq, sub.baseRev]).toEqual([1, 0]);
    expect(c.applyLocal(op([3, "2"]))).toBeNull();
    expect(c.applyLocal(op([4, "3"]))).toBeNull();
    expect(c.buffer?.toJSON()).toEqual([3, "23"]);
    const [none, theirs] = c.applyServer(applied(1, "you", 1, [1, "é", 1]));
    expect(none).toBeNull();
    expect(theirs?.toJSON()).toEqual([2, "é", 3]);
    expect(c.text).toBe("1aéb23");
    expect(c.serverText).toBe("aéb");
    const [next] = c.applyServer(applied(2, "me", 1, ["1", 3]));
    expect(next && [next.seq, next.baseRev]).toEqual([2, 2]);
    expect(next?.op.toJSON()).toEqual([4, "23"]);
    expect(c.resend()).toEqual(next);
    c.applyServer(applied(3, "me", 2, [4, "23"]));
    expect(c.hasPending).toBe(false);
    expect(c.serverText).toBe(c.text);
    expect(c.resend()).toBeNull();
  });

  it("refuses revision gaps and ops that do not fit", () => {
    const c = new OtClient("me", 5, "ab");
    expect(() => c.applyServer(applied(7, "you", 1, [2]))).toThrow(/expected revision 6/);
    expect(() => c.applyServer(applied(6, "you", 1, [3]))).toThrow();
    expect(() => c.applyLocal(op([9]))).toThrow();
    expect([c.text, c.rev]).toEqual(["ab", 5]);
  });

  it("saves pending edits and puts them back on the same revision after a reload", () => {
    const c = new OtClient("me", 3, "hello");
    c.applyLocal(op([5, " world"]));
    c.applyLocal(op([11, "!"]));
    const saved = JSON.parse(JSON.stringify(c.save()));
    const back = OtClient.restore("me", 3, "hello", saved);
    expect(back.text).toBe("hello world!");
    expect(back.resend()).toEqual({ seq: 1, baseRev: 3, op: op([5, " world"]) });
    // Someone else's edit replayed after the reload is transformed over both.
    back.applyServer(applied(4, "you", 1, ["> ", 5]));
    expect(back.text).toBe("> hello world!");
    // The ack of the in-flight op sends the buffer.
    const [next] = back.applyServer(applied(5, "me", 1, [7, " world"]));
    expect(next?.op.toJSON()).toEqual([13, "!"]);
    expect(next?.seq).toBe(2);
    // Saved against another revision, the edits cannot be placed: a clean copy.
    expect(OtClient.restore("me", 9, "other", saved).text).toBe("other");
  });
});
