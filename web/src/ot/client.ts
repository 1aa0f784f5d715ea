// One participant's copy of a document: the client half of central-server OT, the TypeScript
// twin of `ot/src/client.rs`. At most one operation is in flight; edits made while it waits
// for its acknowledgement are composed into one buffer, sent when the ack arrives.

import { OtError, TextOperation } from "./operation";

/** What goes to the server as an `op` message. */
export interface Submission {
  seq: number;
  baseRev: number;
  op: TextOperation;
}

/** An op broadcast by the server as revision `rev`. */
export interface AppliedOp {
  rev: number;
  clientId: string;
  seq: number;
  op: TextOperation;
}

export interface InFlight {
  seq: number;
  op: TextOperation;
}

/** What can be written down and picked up again after a page reload. */
export interface PendingState {
  rev: number;
  nextSeq: number;
  inflight: { seq: number; op: unknown } | null;
  buffer: unknown | null;
}

export class RevisionGap extends OtError {}

export class OtClient {
  inflight: InFlight | null = null;
  buffer: TextOperation | null = null;
  /** The server's text at `rev` (ours without the unacknowledged edits): where other
   * people's cursors are measured. */
  serverText: string;

  constructor(
    readonly clientId: string,
    public rev: number,
    public text: string,
    public nextSeq = 1,
  ) {
    this.serverText = text;
  }

  /** True while edits exist that the server has not acknowledged. */
  get hasPending(): boolean {
    return this.inflight !== null;
  }

  private startSending(op: TextOperation): Submission {
    this.inflight = { seq: this.nextSeq++, op };
    return this.submission();
  }

  private submission(): Submission {
    const f = this.inflight as InFlight;
    return { seq: f.seq, baseRev: this.rev, op: f.op };
  }

  /** The user edited: apply locally; returns what to send now, if anything. */
  applyLocal(op: TextOperation): Submission | null {
    this.text = op.apply(this.text);
    if (op.isNoop()) return null;
    if (!this.inflight) return this.startSending(op);
    this.buffer = this.buffer ? TextOperation.compose(this.buffer, op) : op;
    return null;
  }

  /**
   * An op from the server. Our own in-flight op is the ack (the buffer is sent next); anyone
   * else's is transformed over our unacknowledged edits. Returns `[next submission, op to apply
   * to the editor]`.
   */
  applyServer(applied: AppliedOp): [Submission | null, TextOperation | null] {
    if (applied.rev !== this.rev + 1) {
      throw new RevisionGap(`expected revision ${this.rev + 1}, got ${applied.rev}`);
    }
    const f = this.inflight;
    if (f && applied.clientId === this.clientId && applied.seq === f.seq) {
      this.rev++;
      this.serverText = f.op.apply(this.serverText);
      this.inflight = null;
      const buffer = this.buffer;
      this.buffer = null;
      return [buffer ? this.startSending(buffer) : null, null];
    }
    let theirs = applied.op;
    let mine: TextOperation | null = null;
    let buf: TextOperation | null = null;
    if (f) [mine, theirs] = TextOperation.transform(f.op, theirs);
    if (this.buffer) [buf, theirs] = TextOperation.transform(this.buffer, theirs);
    this.serverText = applied.op.apply(this.serverText);
    this.text = theirs.apply(this.text);
    this.rev++;
    if (f && mine) this.inflight = { seq: f.seq, op: mine };
    this.buffer = buf;
    return [null, theirs];
  }

  /** After a reconnect, once the server has replayed what we missed: the in-flight op again. */
  resend(): Submission | null {
    return this.inflight ? this.submission() : null;
  }

  /**
   * Our own edits not yet acknowledged, composed: what a remote position must be moved
   * through to match our text.
   */
  pendingOps(): TextOperation[] {
    const out: TextOperation[] = [];
    if (this.inflight) out.push(this.inflight.op);
    if (this.buffer) out.push(this.buffer);
    return out;
  }

  save(): PendingState {
    return {
      rev: this.rev,
      nextSeq: this.nextSeq,
      inflight: this.inflight ? { seq: this.inflight.seq, op: this.inflight.op.toJSON() } : null,
      buffer: this.buffer ? this.buffer.toJSON() : null,
    };
  }

  /**
   * Starts from the server's text at `rev` and puts back unacknowledged edits saved against that
   * same revision. Returns false (and drops them) when they do not fit the text.
   */
  static restore(
    clientId: string,
    rev: number,
    text: string,
    saved: PendingState | null,
    lastSeq: number | null = null,
  ): OtClient {
    // Sending continues after both what we sent and what the server applied from us.
    const nextSeq = Math.max(saved?.nextSeq ?? 1, (lastSeq ?? 0) + 1);
    const client = new OtClient(clientId, rev, text, nextSeq);
    if (!saved || saved.rev !== rev || !saved.inflight) return client;
    const inflight = TextOperation.fromJSON(saved.inflight.op);
    client.text = inflight.apply(text);
    client.inflight = { seq: saved.inflight.seq, op: inflight };
    if (saved.buffer) {
      const buffer = TextOperation.fromJSON(saved.buffer);
      client.text = buffer.apply(client.text);
      client.buffer = buffer;
    }
    return client;
  }
}
