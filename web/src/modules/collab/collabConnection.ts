/**
 * The co-editing WebSocket of a workspace (docs/API.md "Co-editing"): one Y.Doc per open file
 * plus the workspace presence, each a channel of the socket. Binary frames are
 * `varString(path) + y-protocols message`; text frames are the JSON messages of ws.gen.ts.
 * Reconnects with backoff; after a reconnect every document re-joins and the sync exchange
 * sends the server whatever it missed (so nothing typed while disconnected is lost).
 */
import * as decoding from "lib0/decoding";
import * as encoding from "lib0/encoding";
import * as awarenessProtocol from "y-protocols/awareness";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";
import type { components } from "../../api/ws.gen";
import { backoffDelay, DEFAULT_BACKOFF } from "../terminal/reconnect";
import { isFatalClose } from "../terminal/protocol";

type Schemas = components["schemas"];
export type CollabServerMessage = Schemas["CollabServerMessage"];
export type CollabUser = Schemas["CollabUser"];

/** A flush unanswered this long is sent again (until the caller's timeout). */
const FLUSH_RETRY_MS = 3000;
const MESSAGE_SYNC = 0;
const MESSAGE_AWARENESS = 1;
export const PRESENCE = "";

/** What each connection shares on the presence channel. */
export interface PresenceState {
  user: CollabUser & { tab: string };
  file: string | null;
  line: number | null;
  column: number | null;
}

/** What the server last said the file in the DB holds (``saved``): its version, UTF-8 length and CRC-32. */
export interface SavedMark {
  version: number;
  bytes: number;
  crc32: number;
}

export interface CollabDoc {
  path: string;
  doc: Y.Doc;
  text: Y.Text;
  awareness: awarenessProtocol.Awareness;
  synced: boolean;
  saved: SavedMark | null;
  /** Why the server's last save of this document failed (cleared by its next save). */
  saveError: string | null;
  /** The text last confirmed saved (for carrying edits made offline into a new lineage). */
  confirmedText: string | null;
}

export type FlushResult = { ok: true; version: number } | { ok: false; message: string };

export interface CollabCallbacks {
  onHello(user: CollabUser, writable: boolean): void;
  /** A document is synced (first join, or another lineage after a reconnect: a new Y.Doc). */
  onDoc(d: CollabDoc): void;
  /** The server closed a document (deleted, moved...) or refused to open it. */
  onDocGone(path: string, reason: string, message: string): void;
  onError(message: string): void;
  onPresence(states: Map<number, PresenceState>): void;
  onState(state: "connecting" | "open" | "reconnecting" | "failed", closeCode?: number): void;
  /** What is known about a document's saving changed (a ``saved`` ack or a failed save). */
  onSaveInfo(path: string): void;
}

function frame(path: string, write: (e: encoding.Encoder) => void): Uint8Array {
  const e = encoding.createEncoder();
  encoding.writeVarString(e, path);
  write(e);
  return encoding.toUint8Array(e);
}

export class CollabConnection {
  private socket: WebSocket | null = null;
  private readonly docs = new Map<string, CollabDoc & { epoch: string | null }>();
  private readonly wanted = new Set<string>();
  private readonly carries = new Map<string, Carry>();
  readonly presenceDoc = new Y.Doc();
  readonly presence = new awarenessProtocol.Awareness(this.presenceDoc);
  private attempt = 0;
  private closed = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private opened = false;
  private nextFlush = 1;
  private readonly flushes = new Map<number, (r: FlushResult | null) => void>();

  constructor(
    private readonly url: string,
    private readonly cb: CollabCallbacks,
  ) {
    this.presence.setLocalState(null);
    this.presence.on("update", this.onPresenceUpdate);
    this.presence.on("change", () => this.cb.onPresence(this.presence.getStates() as Map<number, PresenceState>));
  }

  connect(): void {
    if (this.closed) return;
    this.cb.onState(this.opened ? "reconnecting" : "connecting");
    const s = new WebSocket(this.url);
    s.binaryType = "arraybuffer";
    this.socket = s;
    s.onopen = () => {
      if (this.socket !== s) return;
      this.attempt = 0;
      this.opened = true;
      this.cb.onState("open");
      const local = this.presence.getLocalState();
      if (local) this.sendPresence([this.presence.clientID]);
      for (const path of this.wanted) this.sendJoin(path);
    };
    s.onmessage = (ev: MessageEvent) => {
      if (this.socket !== s) return;
      if (typeof ev.data === "string") this.onText(ev.data);
      else this.onBinary(new Uint8Array(ev.data as ArrayBuffer));
    };
    s.onclose = (ev: CloseEvent) => {
      if (this.socket !== s) return;
      this.socket = null;
      for (const d of this.docs.values()) d.synced = false;
      for (const answer of this.flushes.values()) answer(null); // asked again after the reconnect
      this.flushes.clear();
      if (isFatalClose(ev.code)) {
        this.cb.onState("failed", ev.code);
        return;
      }
      this.retry();
    };
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Have the server save `path` now (Run saves first): resolves once the saver (on whichever
   * replica) has saved everything this client sent before, or with why not. Waits for the
   * socket and the document's sync (a reconnect resends what the server missed) within `timeoutMs`.
   */
  async flush(path: string, timeoutMs: number): Promise<FlushResult> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const d = this.docs.get(path);
      if (!this.wanted.has(path)) return { ok: false, message: `${path} is not co-edited` };
      if (!d || !d.synced || !this.isOpen) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const id = this.nextFlush++;
      const answer = await new Promise<FlushResult | null>((resolve) => {
        // Asked again every few seconds: a saver replica that died meanwhile loses the request,
        // and the replica that takes its lease over answers the next one.
        const left = deadline - Date.now();
        const timer = setTimeout(() => {
          this.flushes.delete(id);
          resolve(left > FLUSH_RETRY_MS ? null : { ok: false, message: "the server did not answer in time" });
        }, Math.max(0, Math.min(left, FLUSH_RETRY_MS)));
        this.flushes.set(id, (r) => {
          clearTimeout(timer);
          resolve(r);
        });
        this.sendText({ type: "flush", path, id });
      });
      if (answer) return answer;
    }
    return { ok: false, message: "the co-editing connection is not available or the server did not answer in time" };
  }

  private retry(): void {
    if (this.closed) return;
    this.cb.onState("reconnecting");
    const delay = backoffDelay(this.attempt++, DEFAULT_BACKOFF, Math.random);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  dispose(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    awarenessProtocol.removeAwarenessStates(this.presence, [this.presence.clientID], "local");
    this.socket?.close(1000);
    for (const d of this.docs.values()) this.destroyDoc(d);
    this.docs.clear();
  }

  /** Share what this tab has open and where its cursor is. */
  setPresence(state: PresenceState): void {
    this.presence.setLocalState(state);
  }

  /** Start co-editing `path`; `onDoc` delivers its document. */
  join(path: string): void {
    if (this.wanted.has(path)) {
      const d = this.docs.get(path);
      if (d) this.cb.onDoc(d);
      return;
    }
    this.wanted.add(path);
    this.sendJoin(path);
  }

  leave(path: string): void {
    if (!this.wanted.delete(path)) return;
    const d = this.docs.get(path);
    if (d) {
      this.docs.delete(path);
      this.destroyDoc(d);
    }
    this.sendText({ type: "leave", path });
  }

  doc(path: string): CollabDoc | undefined {
    return this.docs.get(path);
  }

  private destroyDoc(d: CollabDoc): void {
    awarenessProtocol.removeAwarenessStates(d.awareness, [d.doc.clientID], "local");
    d.awareness.destroy();
    d.doc.destroy();
  }

  private sendJoin(path: string): void {
    this.sendText({ type: "join", path });
  }

  private sendText(m: unknown): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(m));
  }

  private sendBinary(data: Uint8Array): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(data as Uint8Array<ArrayBuffer>);
  }

  private onPresenceUpdate = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
    if (origin === this) return;
    const mine = [...added, ...updated, ...removed].filter((c) => c === this.presence.clientID);
    if (mine.length) this.sendPresence(mine);
  };

  private sendPresence(clients: number[]): void {
    const update = awarenessProtocol.encodeAwarenessUpdate(this.presence, clients);
    this.sendBinary(frame(PRESENCE, (e) => {
      encoding.writeVarUint(e, MESSAGE_AWARENESS);
      encoding.writeVarUint8Array(e, update);
    }));
  }

  private newDoc(path: string, epoch: string): CollabDoc & { epoch: string | null } {
    const doc = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(doc);
    const d: CollabDoc & { epoch: string | null } = {
      path, doc, text: doc.getText("content"), awareness, synced: false, epoch, saved: null, saveError: null, confirmedText: null,
    };
    doc.on("update", (update: Uint8Array, origin: unknown) => {
      if (origin === this) return;
      this.sendBinary(frame(path, (e) => {
        encoding.writeVarUint(e, MESSAGE_SYNC);
        syncProtocol.writeUpdate(e, update);
      }));
    });
    awareness.on("update", ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
      if (origin === this) return;
      const changed = [...added, ...updated, ...removed].filter((c) => c === doc.clientID);
      if (!changed.length) return;
      const upd = awarenessProtocol.encodeAwarenessUpdate(awareness, changed);
      this.sendBinary(frame(path, (e) => {
        encoding.writeVarUint(e, MESSAGE_AWARENESS);
        encoding.writeVarUint8Array(e, upd);
      }));
    });
    return d;
  }

  private onText(raw: string): void {
    let m: CollabServerMessage;
    try {
      m = JSON.parse(raw) as CollabServerMessage;
    } catch {
      return;
    }
    switch (m.type) {
      case "hello":
        this.cb.onHello(m.user, m.writable);
        break;
      case "joined": {
        if (!this.wanted.has(m.path)) return;
        let d = this.docs.get(m.path);
        if (!d || d.epoch !== m.epoch) {
          // Another lineage than ours (first join, or the server forgot the document): start
          // afresh; our copy's items would duplicate the text. What we typed that the server
          // never got (offline) is carried over once the new copy is synced.
          let carry: Carry | undefined;
          if (d) {
            carry = { mine: d.text.toString(), base: d.confirmedText };
            this.destroyDoc(d);
          }
          d = this.newDoc(m.path, m.epoch);
          if (carry) this.carries.set(m.path, carry);
          this.docs.set(m.path, d);
        }
        const doc = d.doc;
        this.sendBinary(frame(m.path, (e) => {
          encoding.writeVarUint(e, MESSAGE_SYNC);
          syncProtocol.writeSyncStep1(e, doc);
        }));
        const state = d.awareness.getLocalState();
        if (state) {
          const upd = awarenessProtocol.encodeAwarenessUpdate(d.awareness, [doc.clientID]);
          this.sendBinary(frame(m.path, (e) => {
            encoding.writeVarUint(e, MESSAGE_AWARENESS);
            encoding.writeVarUint8Array(e, upd);
          }));
        }
        break;
      }
      case "closed": {
        this.wanted.delete(m.path);
        const d = this.docs.get(m.path);
        if (d) {
          this.docs.delete(m.path);
          this.destroyDoc(d);
        }
        this.cb.onDocGone(m.path, m.reason, m.message);
        break;
      }
      case "saved": {
        const d = this.docs.get(m.path);
        if (!d) return;
        d.saved = { version: m.version, bytes: m.bytes, crc32: m.crc32 };
        d.saveError = null;
        const text = d.text.toString();
        if (matchesSaved(text, d.saved)) d.confirmedText = text;
        this.cb.onSaveInfo(m.path);
        break;
      }
      case "flushed": {
        const answer = this.flushes.get(m.id);
        this.flushes.delete(m.id);
        answer?.(m.ok ? { ok: true, version: m.version ?? 0 } : { ok: false, message: m.message ?? "the file could not be saved" });
        break;
      }
      case "error":
        if (m.path && m.error === "save_failed" && this.docs.has(m.path)) {
          const d = this.docs.get(m.path);
          if (d) d.saveError = m.message;
          this.cb.onSaveInfo(m.path);
          this.cb.onError(`Could not save ${m.path}: ${m.message}`);
        } else if (m.path && this.wanted.has(m.path) && !this.docs.has(m.path)) {
          this.wanted.delete(m.path);
          this.cb.onDocGone(m.path, m.error, m.message);
        } else {
          this.cb.onError(m.message);
        }
        break;
      case "pong":
        break;
    }
  }

  private onBinary(data: Uint8Array): void {
    const dec = decoding.createDecoder(data);
    const path = decoding.readVarString(dec);
    const kind = decoding.readVarUint(dec);
    if (path === PRESENCE) {
      if (kind === MESSAGE_AWARENESS) awarenessProtocol.applyAwarenessUpdate(this.presence, decoding.readVarUint8Array(dec), this);
      return;
    }
    const d = this.docs.get(path);
    if (!d) return;
    if (kind === MESSAGE_AWARENESS) {
      awarenessProtocol.applyAwarenessUpdate(d.awareness, decoding.readVarUint8Array(dec), this);
      return;
    }
    if (kind !== MESSAGE_SYNC) return;
    const reply = encoding.createEncoder();
    encoding.writeVarString(reply, path);
    encoding.writeVarUint(reply, MESSAGE_SYNC);
    const before = encoding.length(reply);
    const t = syncProtocol.readSyncMessage(dec, reply, d.doc, this);
    if (encoding.length(reply) > before) this.sendBinary(encoding.toUint8Array(reply));
    if (t === syncProtocol.messageYjsSyncStep2 && !d.synced) {
      d.synced = true;
      const carry = this.carries.get(path);
      if (carry) {
        this.carries.delete(path);
        carryOver(d.text, carry);
      }
      if (d.confirmedText === null && d.saved && matchesSaved(d.text.toString(), d.saved)) d.confirmedText = d.text.toString();
      this.cb.onDoc(d);
    }
  }
}

/** A document's text before its lineage changed: `mine` (what the user saw) and `base` (the text last confirmed saved). */
interface Carry {
  mine: string;
  base: string | null;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE, as Python's zlib.crc32) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = (CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8)) >>> 0;
  return (c ^ 0xffffffff) >>> 0;
}

const utf8 = new TextEncoder();

/** Whether `text` is what the server said the DB holds. */
export function matchesSaved(text: string, saved: SavedMark): boolean {
  const raw = utf8.encode(text);
  return raw.length === saved.bytes && crc32(raw) === saved.crc32;
}

/** The one edit (common prefix and suffix kept) that turns `from` into `to`. */
export function singleEdit(from: string, to: string): { at: number; remove: number; insert: string } {
  let p = 0;
  const max = Math.min(from.length, to.length);
  while (p < max && from.charCodeAt(p) === to.charCodeAt(p)) p++;
  let s = 0;
  while (s < max - p && from.charCodeAt(from.length - 1 - s) === to.charCodeAt(to.length - 1 - s)) s++;
  return { at: p, remove: from.length - p - s, insert: to.slice(p, to.length - s) };
}

/**
 * Carry the user's offline edits into a fresh copy of the document (the server forgot the old
 * lineage, e.g. the only editor's socket dropped and the server saved and dropped its copy). If
 * the user's text is the one last confirmed saved, nothing was typed offline and the server's
 * text stands; otherwise the user's text is applied as one minimal edit (what they see wins).
 */
export function carryOver(text: Y.Text, carry: Carry): void {
  const server = text.toString();
  if (server === carry.mine || carry.base === carry.mine) return;
  const e = singleEdit(server, carry.mine);
  const change = () => {
    if (e.remove) text.delete(e.at, e.remove);
    if (e.insert) text.insert(e.at, e.insert);
  };
  if (text.doc) text.doc.transact(change);
  else change();
}
