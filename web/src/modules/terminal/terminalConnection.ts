/**
 * One terminal's WebSocket, kept alive: it reconnects after a network drop to the SAME terminal id (the
 * server keeps the shell and replays its recent scrollback), pings to notice dead connections, and
 * never touches xterm itself (the view subscribes to its events), so it can be tested with a fake socket.
 */
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./reconnect";
import { decodeServerMessage, encodeInput, encodeResize, encodeControl, FATAL_CLOSE_CODES, isFatalClose, type ServerControl } from "./protocol";
import { isTerminalReport } from "./terminalReports";

export type ConnectionState = "connecting" | "open" | "reconnecting" | "exited" | "failed" | "closed";

/** The part of the browser's WebSocket this class uses. */
export interface SocketLike {
  binaryType: BinaryType;
  readonly readyState: number;
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  send(data: string | ArrayBuffer | Uint8Array<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
}

export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  now(): number;
}

export interface TerminalConnectionEvents {
  /**
   * Bytes to write to the terminal. For the scrollback replay of a reattach, `parsed` is given: call it
   * once the emulator has processed these bytes (xterm's write callback). Until then, the emulator's
   * answers to queries in the replay are not sent to the shell.
   */
  output(data: Uint8Array, parsed?: () => void): void;
  /** Clear the screen: the server is about to replay its scrollback after a reattach. */
  reset(): void;
  state(state: ConnectionState, detail: string | null): void;
  /** A control message for whoever shows command history / errors. */
  control(msg: ServerControl): void;
}

export interface TerminalConnectionOptions {
  /** Builds the URL for the current size. */
  url(cols: number, rows: number): string;
  createSocket(url: string): SocketLike;
  events: TerminalConnectionEvents;
  clock?: Clock;
  backoff?: BackoffOptions;
  random?: () => number;
  pingIntervalMs?: number;
  /** With no frame at all for this long, the connection is taken as dead and replaced. */
  deadAfterMs?: number;
  cols?: number;
  rows?: number;
}

const OPEN = 1;
const MAX_PENDING_INPUT = 64 * 1024;
/** If the view never reports the replay as processed, stop ignoring terminal reports after this long. */
export const REPLAY_SETTLE_MS = 5_000;

const realClock: Clock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (h) => globalThis.clearTimeout(h as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

export class TerminalConnection {
  private readonly opts: TerminalConnectionOptions;
  private readonly clock: Clock;
  private socket: SocketLike | null = null;
  private stateValue: ConnectionState = "connecting";
  private attempt = 0;
  private reconnectTimer: unknown = null;
  private pingTimer: unknown = null;
  private lastFrameAt = 0;
  /** Whether any socket of this connection has delivered output (so a reattach must clear the screen first). */
  private hadOutput = false;
  private firstFrame = true;
  private pendingInput: Uint8Array<ArrayBuffer>[] = [];
  private pendingBytes = 0;
  /** Bytes of the current socket's scrollback replay still to come (from the ready message). */
  private replayLeft = 0;
  /** Replay chunks handed to the emulator and not yet processed by it. */
  private replayUnparsed = 0;
  /** A replay is being shown: the emulator's reports are its answers to old queries, not input. */
  private replaying = false;
  private replayTimer: unknown = null;
  private cols: number;
  private rows: number;

  constructor(opts: TerminalConnectionOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.cols = opts.cols ?? 80;
    this.rows = opts.rows ?? 24;
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  /** Opens the first connection. */
  connect(): void {
    if (this.stateValue === "closed") return;
    this.openSocket();
  }

  /** Keystrokes or pasted text. Kept (bounded) while reconnecting and sent once reconnected. */
  sendInput(data: string): void {
    if (this.replaying && isTerminalReport(data)) return; // the emulator answering the replay
    const bytes = encodeInput(data);
    if (this.socket && this.socket.readyState === OPEN && this.stateValue === "open") {
      this.socket.send(bytes);
    } else if (this.stateValue === "connecting" || this.stateValue === "reconnecting") {
      if (this.pendingBytes + bytes.byteLength <= MAX_PENDING_INPUT) {
        this.pendingInput.push(bytes);
        this.pendingBytes += bytes.byteLength;
      }
    }
  }

  resize(cols: number, rows: number): void {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    if (this.socket && this.socket.readyState === OPEN) this.socket.send(encodeResize(cols, rows));
  }

  /** Reconnects at once (e.g. the browser came back online) instead of waiting for the backoff. */
  reconnectNow(): void {
    if (this.stateValue !== "reconnecting") return;
    this.clearReconnect();
    this.openSocket();
  }

  /** After the shell exited or the connection failed: connect to the same id again (the server starts a shell). */
  restart(): void {
    if (this.stateValue !== "exited" && this.stateValue !== "failed") return;
    this.attempt = 0;
    this.openSocket();
  }

  /** Closes for good (the view unmounted). The server keeps the shell for a later reattach. */
  dispose(): void {
    this.setState("closed", null);
    this.clearReconnect();
    this.clearPing();
    this.endReplay();
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onopen = s.onmessage = s.onerror = null;
      s.onclose = null;
      try {
        s.close(1000, "closed by client");
      } catch {
        /* already closed */
      }
    }
  }

  private setState(state: ConnectionState, detail: string | null): void {
    if (this.stateValue === state && detail === null) return;
    this.stateValue = state;
    this.opts.events.state(state, detail);
  }

  private openSocket(): void {
    this.setState(this.hadOutput || this.attempt > 0 ? "reconnecting" : "connecting", null);
    let socket: SocketLike;
    try {
      socket = this.opts.createSocket(this.opts.url(this.cols, this.rows));
    } catch {
      this.scheduleReconnect();
      return;
    }
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.firstFrame = true;
    this.replayLeft = 0;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      this.attempt = 0;
      this.lastFrameAt = this.clock.now();
      this.setState("open", null);
      socket.send(encodeResize(this.cols, this.rows));
      for (const chunk of this.pendingInput) socket.send(chunk);
      this.pendingInput = [];
      this.pendingBytes = 0;
      this.schedulePing();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      this.lastFrameAt = this.clock.now();
      this.handleMessage(ev.data);
    };
    socket.onerror = () => {
      /* a close event always follows */
    };
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearPing();
      this.handleClose(ev.code, ev.reason);
    };
  }

  private handleMessage(data: unknown): void {
    const msg = decodeServerMessage(data);
    if (!msg) return;
    const first = this.firstFrame;
    this.firstFrame = false;
    if (msg.type === "output") {
      // Output arriving first on a new socket is the server's scrollback replay: start from a clean screen.
      if (first && this.hadOutput) this.opts.events.reset();
      this.hadOutput = true;
      this.output(msg.data);
      return;
    }
    if (msg.type === "ready") {
      if (first && msg.reattached && this.hadOutput) this.opts.events.reset();
      this.replayLeft = msg.replay_bytes;
      if (this.replayLeft > 0) this.beginReplay();
    }
    if (msg.type === "exit") {
      this.setState("exited", `Process exited with code ${msg.code}.`);
    }
    if (msg.type === "pong") return;
    this.opts.events.control(msg);
  }

  /** Hands output to the view; the replay's part with a callback that ends the replay once processed. */
  private output(data: Uint8Array): void {
    if (this.replayLeft <= 0) {
      this.opts.events.output(data);
      return;
    }
    const n = Math.min(this.replayLeft, data.byteLength);
    this.replayLeft -= n;
    this.replayUnparsed += 1;
    let done = false;
    const replayed = n === data.byteLength ? data : data.subarray(0, n);
    this.opts.events.output(replayed, () => {
      if (done) return;
      done = true;
      this.replayUnparsed -= 1;
      this.maybeEndReplay();
    });
    if (n < data.byteLength) this.opts.events.output(data.subarray(n));
  }

  private beginReplay(): void {
    this.replaying = true;
    if (this.replayTimer !== null) this.clock.clearTimeout(this.replayTimer);
    this.replayTimer = this.clock.setTimeout(() => {
      this.replayTimer = null;
      this.endReplay();
    }, REPLAY_SETTLE_MS);
  }

  private maybeEndReplay(): void {
    if (this.replaying && this.replayLeft <= 0 && this.replayUnparsed <= 0) this.endReplay();
  }

  private endReplay(): void {
    this.replaying = false;
    this.replayLeft = 0;
    if (this.replayTimer !== null) this.clock.clearTimeout(this.replayTimer);
    this.replayTimer = null;
  }

  private handleClose(code: number, reason: string): void {
    if (this.stateValue === "closed" || this.stateValue === "exited") return;
    if (isFatalClose(code)) {
      this.setState("failed", FATAL_CLOSE_CODES[code] ?? reason ?? "The terminal was closed.");
      return;
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.clearReconnect();
    const delay = backoffDelay(this.attempt, this.opts.backoff ?? DEFAULT_BACKOFF, this.opts.random ?? Math.random);
    this.attempt += 1;
    this.setState("reconnecting", null);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.openSocket();
    }, delay);
  }

  private schedulePing(): void {
    this.clearPing();
    const interval = this.opts.pingIntervalMs ?? 20_000;
    const deadAfter = this.opts.deadAfterMs ?? 45_000;
    this.pingTimer = this.clock.setTimeout(() => {
      this.pingTimer = null;
      const s = this.socket;
      if (!s || s.readyState !== OPEN) return;
      if (this.clock.now() - this.lastFrameAt > deadAfter) {
        // A half-open connection: drop it and let the reconnect logic take over.
        this.socket = null;
        s.onopen = s.onmessage = s.onerror = s.onclose = null;
        try {
          s.close(4000, "no answer to ping");
        } catch {
          /* ignore */
        }
        this.scheduleReconnect();
        return;
      }
      s.send(encodeControl({ type: "ping" }));
      this.schedulePing();
    }, interval);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer !== null) this.clock.clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private clearPing(): void {
    if (this.pingTimer !== null) this.clock.clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }
}
