// The wire messages between the browser and the agent, mirroring
// `protocol/src/messages.rs` (one JSON object per WebSocket text frame, tagged by `type`).
// Positions are Unicode code points; text operations are ot.js arrays.

export const PROTOCOL_VERSION = 1;
export const HEARTBEAT_INTERVAL_MS = 15_000;

export type Role = "owner" | "editor" | "viewer";

export interface Position {
  line: number;
  column: number;
}

export interface Range {
  anchor: Position;
  head: Position;
}

export interface Participant {
  user_id: string;
  name: string;
  role: Role;
  color: string;
  /** Voice state, while the participant is in the voice room. */
  voice?: VoiceState | null;
}

export interface VoiceState {
  muted: boolean;
}

export interface TreeEntry {
  path: string;
  kind: "file" | "dir";
  size: number;
  binary: boolean;
}

export type FileChange =
  | { kind: "created"; entry: TreeEntry }
  | { kind: "deleted"; path: string }
  | { kind: "renamed"; from: string; to: string }
  | { kind: "modified"; path: string };

export type ErrorCode =
  | "malformed"
  | "unsupported_version"
  | "unauthorized"
  | "room_full"
  | "forbidden"
  | "too_large"
  | "invalid_path"
  | "not_found"
  | "already_exists"
  | "bad_op"
  | "resync"
  | "voice_failed"
  | "internal";

export type ClientMessage =
  | { type: "join"; version: number; token: string; client_id: string }
  | { type: "heartbeat" }
  | { type: "open"; file: string; since?: number }
  | { type: "close"; file: string }
  | { type: "op"; file: string; base_rev: number; seq: number; op: unknown }
  | { type: "cursor"; file: string; rev: number; ranges: Range[] }
  | { type: "viewport"; file: string; top_line: number }
  | { type: "create_file"; path: string }
  | { type: "create_dir"; path: string }
  | { type: "delete"; path: string }
  | { type: "rename"; from: string; to: string }
  | { type: "terminal_open"; cols: number; rows: number }
  | { type: "terminal_attach"; id: number }
  | { type: "terminal_input"; id: number; data: string }
  | { type: "terminal_resize"; id: number; cols: number; rows: number }
  | { type: "terminal_close"; id: number }
  | { type: "voice_join" }
  | { type: "voice_leave" }
  | { type: "voice_offer"; sdp: string }
  | { type: "voice_answer"; sdp: string }
  | { type: "voice_candidate"; candidate: string; sdp_mid: string | null; sdp_mline_index: number | null }
  | { type: "voice_mute"; muted: boolean };

export type ServerMessage =
  | {
      type: "welcome";
      version: number;
      you: Participant;
      participants: Participant[];
      tree: TreeEntry[];
      terminals: number[];
    }
  | { type: "participant_joined"; participant: Participant }
  | { type: "participant_left"; user_id: string }
  | {
      type: "document";
      file: string;
      rev: number;
      text: string;
      checksum: number;
      last_seq: number | null;
    }
  | { type: "op"; file: string; rev: number; client_id: string; seq: number; op: unknown }
  | { type: "cursor"; file: string; rev: number; user_id: string; color: string; ranges: Range[] }
  | { type: "viewport"; user_id: string; file: string; top_line: number }
  | { type: "checksum"; file: string; rev: number; checksum: number }
  | { type: "file_changed"; change: FileChange }
  | { type: "terminal_opened"; id: number; cols: number; rows: number }
  | { type: "notice"; kind: string; message: string; at: number }
  | { type: "terminal_snapshot"; id: number; cols: number; rows: number; data: string }
  | { type: "terminal_output"; id: number; data: string }
  | { type: "terminal_exited"; id: number; code: number | null }
  | { type: "voice_offer"; sdp: string }
  | { type: "voice_answer"; sdp: string }
  | { type: "voice_candidate"; candidate: string; sdp_mid: string | null; sdp_mline_index: number | null }
  | { type: "voice_state"; user_id: string; voice: VoiceState | null }
  | { type: "error"; code: ErrorCode; message: string };

/** CRC-32 (IEEE) of the UTF-8 bytes of `text`: the agent's document checksum. */
export function crc32(text: string): number {
  const bytes = new TextEncoder().encode(text);
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** Base64 of terminal bytes, decoded to bytes. */
export function fromBase64(data: string): Uint8Array {
  const raw = atob(data);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}
