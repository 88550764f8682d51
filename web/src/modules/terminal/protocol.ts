import type { components } from "../../api/ws.gen";

/**
 * The terminal WebSocket's message protocol (docs/API.md): binary frames carry raw terminal bytes both
 * ways; text frames carry JSON control messages.
 */

type Messages = components["schemas"];

/** The server's text frames, generated from src/coolcoding/schemas/ws.py (scripts/gen-ws-types.sh). */
export type ServerControl = Messages["TerminalServerMessage"];

export type ServerMessage = { type: "output"; data: Uint8Array } | ServerControl;

export type ClientControl = Messages["TerminalClientMessage"];

const encoder = new TextEncoder();

/** A keystroke/paste from xterm as the binary frame to send. */
export function encodeInput(data: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(data);
}

export function encodeControl(msg: ClientControl): string {
  return JSON.stringify(msg);
}

export function encodeResize(cols: number, rows: number): string {
  return encodeControl({ type: "resize", cols: Math.max(1, Math.floor(cols)), rows: Math.max(1, Math.floor(rows)) });
}

/** Decodes one received frame; null for a malformed or unknown control message (ignored). */
export function decodeServerMessage(data: unknown): ServerMessage | null {
  if (data instanceof ArrayBuffer) return { type: "output", data: new Uint8Array(data) };
  if (ArrayBuffer.isView(data)) return { type: "output", data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  if (typeof data !== "string") return null;
  let m: unknown;
  try {
    m = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null) return null;
  const o = m as Record<string, unknown>;
  const type = o["type"];
  return typeof type === "string" && Object.hasOwn(DECODERS, type) ? DECODERS[type as ServerControl["type"]](o) : null;
}

type Decoders = { [K in ServerControl["type"]]: (o: Record<string, unknown>) => Extract<ServerControl, { type: K }> };

/** One decoder per server message type: a message added to the schema fails typecheck until it is decoded here. */
const DECODERS: Decoders = {
  ready: (o) => ({
    type: "ready",
    terminal_id: String(o["terminal_id"] ?? ""),
    reattached: o["reattached"] === true,
    // The length of the scrollback replay that follows (0 from a server that does not say).
    replay_bytes: typeof o["replay_bytes"] === "number" && o["replay_bytes"] > 0 ? o["replay_bytes"] : 0,
    // A viewer of a shared workspace: the server refuses this client's input.
    ...(o["read_only"] === true ? { read_only: true } : {}),
  }),
  command: (o) => ({
    type: "command",
    command: String(o["command"] ?? ""),
    exit_code: typeof o["exit_code"] === "number" ? o["exit_code"] : null,
    cwd: typeof o["cwd"] === "string" ? o["cwd"] : null,
    duration_ms: typeof o["duration_ms"] === "number" ? o["duration_ms"] : 0,
  }),
  exit: (o) => ({ type: "exit", code: typeof o["code"] === "number" ? o["code"] : -1 }),
  error: (o) => ({ type: "error", error: o["error"] === "read_only" ? "read_only" : "bad_message", message: String(o["message"] ?? "Terminal error") }),
  pong: () => ({ type: "pong" }),
};

/** Close codes after which reconnecting cannot help (docs/API.md). */
export const FATAL_CLOSE_CODES: Readonly<Record<number, string>> = {
  4401: "You are signed out. Sign in again to use the terminal.",
  4403: "The server closed this terminal: your access to this workspace changed (or this page's origin was refused). Reload the page.",
  4404: "This session no longer exists.",
  4429: "Too many terminals are open in this session (other browser tabs count too). Close one (All terminals lists them) and try again.",
};

export function isFatalClose(code: number): boolean {
  return code in FATAL_CLOSE_CODES;
}

export const VALID_TERMINAL_ID = /^[A-Za-z0-9_-]{1,64}$/;
