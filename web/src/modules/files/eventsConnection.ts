/** The workspace events WebSocket, reconnected with backoff; after a reconnect the owner refetches what it may have missed. */
import { backoffDelay, DEFAULT_BACKOFF } from "../terminal/reconnect";
import { isFatalClose } from "../terminal/protocol";
import type { Clock, SocketLike } from "../terminal/terminalConnection";
import { parseWorkspaceEvent, type WorkspaceEvent } from "./workspaceEvents";

export type EventsState = "connecting" | "open" | "reconnecting" | "failed" | "closed";

export interface EventsConnectionOptions {
  url: string;
  createSocket(url: string): SocketLike;
  onEvent(ev: WorkspaceEvent): void;
  onState(state: EventsState): void;
  /** Called on every open after the first: events may have been missed while disconnected. */
  onResync(): void;
  clock?: Clock;
  random?: () => number;
}

export class EventsConnection {
  private readonly opts: EventsConnectionOptions;
  private socket: SocketLike | null = null;
  private attempt = 0;
  private opened = false;
  private closed = false;
  private timer: unknown = null;

  constructor(opts: EventsConnectionOptions) {
    this.opts = opts;
  }

  private get clock(): Clock {
    return this.opts.clock ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>), now: () => Date.now() };
  }

  connect(): void {
    if (this.closed) return;
    this.opts.onState(this.opened ? "reconnecting" : "connecting");
    let s: SocketLike;
    try {
      s = this.opts.createSocket(this.opts.url);
    } catch {
      this.retry();
      return;
    }
    this.socket = s;
    s.onopen = () => {
      if (this.socket !== s) return;
      this.attempt = 0;
      const wasOpened = this.opened;
      this.opened = true;
      this.opts.onState("open");
      if (wasOpened) this.opts.onResync();
    };
    s.onmessage = (ev) => {
      if (this.socket !== s || typeof ev.data !== "string") return;
      const parsed = parseWorkspaceEvent(ev.data);
      if (!parsed) return;
      this.opts.onEvent(parsed);
      // The server dropped events for us (a slow socket) or synced a storm by a rescan.
      if (parsed.type === "resync") this.opts.onResync();
    };
    s.onerror = () => {};
    s.onclose = (ev) => {
      if (this.socket !== s) return;
      this.socket = null;
      if (this.closed) return;
      if (isFatalClose(ev.code)) {
        this.opts.onState("failed");
        return;
      }
      this.retry();
    };
  }

  reconnectNow(): void {
    if (this.closed || this.socket) return;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.connect();
  }

  dispose(): void {
    this.closed = true;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onopen = s.onmessage = s.onerror = s.onclose = null;
      try {
        s.close(1000);
      } catch {
        /* ignore */
      }
    }
    this.opts.onState("closed");
  }

  private retry(): void {
    this.opts.onState("reconnecting");
    const delay = backoffDelay(this.attempt++, DEFAULT_BACKOFF, this.opts.random ?? Math.random);
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }
}
