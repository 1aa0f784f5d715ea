// The participant's WebSocket to the agent: joins, keeps a heartbeat, and reconnects with
// backoff when the connection drops. Between attempts it asks the gateway whether the session
// is waking up, so the UI can say so instead of "offline".

import {
  HEARTBEAT_INTERVAL_MS,
  PROTOCOL_VERSION,
  type ClientMessage,
  type Participant,
  type ServerMessage,
} from "./protocol";

export type Status = "connecting" | "connected" | "reconnecting" | "waking" | "signed-out" | "failed";

export interface Me {
  sessionId: string;
  name: string;
  role: Participant["role"];
  uid: string;
  token: string;
}

export interface ConnectionEvents {
  status(status: Status, detail?: string): void;
  message(message: ServerMessage): void;
}

/** The same id across reloads of this tab, so the agent recognizes resent ops. */
export function tabClientId(): string {
  const key = "huddle:client-id";
  let id = sessionStorage.getItem(key);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(key, id);
  }
  return id;
}

export class Connection {
  private socket: WebSocket | null = null;
  private heartbeat: number | undefined;
  private attempt = 0;
  private closedByUs = false;
  me: Me | null = null;

  constructor(
    readonly clientId: string,
    private readonly events: ConnectionEvents,
    private readonly base = new URL(".", location.href),
  ) {}

  start(): void {
    void this.connect();
  }

  send(message: ClientMessage): boolean {
    if (this.socket?.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** Drops the socket (tests and "reconnect now"); a new one follows. */
  drop(): void {
    this.socket?.close();
  }

  private async connect(): Promise<void> {
    this.events.status(this.attempt === 0 ? "connecting" : "reconnecting");
    let me: Me;
    try {
      const response = await fetch(new URL("_huddle/me", this.base), { cache: "no-store" });
      if (response.status === 401 || response.status === 403) {
        this.events.status("signed-out", "Open your invite link again to join this session.");
        return;
      }
      if (response.status === 503) {
        this.events.status("waking");
        return this.retry(true);
      }
      if (!response.ok) throw new Error(`${response.status}`);
      me = (await response.json()) as Me;
    } catch {
      return this.retry();
    }
    this.me = me;
    // The agent itself: the gateway answers 503 while the session starts or wakes up (and
    // starts waking it), so say so instead of "reconnecting".
    try {
      const agent = await fetch(new URL("version", this.base), { cache: "no-store" });
      if (agent.status === 503) {
        this.events.status("waking");
        return this.retry(true);
      }
    } catch {
      return this.retry();
    }
    const url = new URL("ws", this.base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url);
    this.socket = socket;
    socket.onopen = () => {
      socket.send(
        JSON.stringify({
          type: "join",
          version: PROTOCOL_VERSION,
          token: me.token,
          client_id: this.clientId,
        } satisfies ClientMessage),
      );
    };
    socket.onmessage = (event) => {
      let message: ServerMessage;
      try {
        message = JSON.parse(event.data as string) as ServerMessage;
      } catch {
        return;
      }
      if (message.type === "welcome") {
        this.attempt = 0;
        this.events.status("connected");
        window.clearInterval(this.heartbeat);
        this.heartbeat = window.setInterval(
          () => this.send({ type: "heartbeat" }),
          HEARTBEAT_INTERVAL_MS,
        );
      }
      if (message.type === "error" && (message.code === "unauthorized" || message.code === "room_full")) {
        this.closedByUs = true;
        this.events.status(message.code === "room_full" ? "failed" : "signed-out", message.message);
        socket.close();
        return;
      }
      this.events.message(message);
    };
    socket.onclose = () => {
      window.clearInterval(this.heartbeat);
      if (this.socket === socket) this.socket = null;
      if (this.closedByUs) return;
      this.events.status("reconnecting");
      void this.retry();
    };
  }

  /** Waits, then connects again: backing off, except while waking (poll every second). */
  private async retry(waking = false): Promise<void> {
    const delay = waking ? 1000 : Math.min(250 * 2 ** this.attempt, 5000) * (0.75 + Math.random() / 2);
    this.attempt++;
    await new Promise((resolve) => setTimeout(resolve, delay));
    return this.connect();
  }
}
