/** Live co-editing of a workspace for the IDE: the connection, who is here (presence) and the synced document of each open file. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { wsUrl } from "../../api/http";
import { CollabConnection, matchesSaved, type CollabDoc, type CollabUser, type FlushResult, type PresenceState } from "./collabConnection";

export interface PresenceEntry {
  clientId: number;
  name: string;
  color: string;
  file: string | null;
  line: number | null;
  column: number | null;
  self: boolean;
}

/** The user's setting: "0" turns live co-editing off (single-user saving with Ctrl+S); on by default. */
const LIVE_KEY = "cc-live-coedit";
/** Without a co-editing socket this long after the page opened, files are edited single-user. */
export const UNAVAILABLE_AFTER_MS = 8000;
/** How long Run (or Ctrl+S) waits for the server to save a co-edited file. */
export const FLUSH_TIMEOUT_MS = 10_000;

export type ConnState = "connecting" | "open" | "reconnecting" | "failed";

/** A co-edited file's save indicator, from the server's acknowledgements. */
export interface CoeditSave {
  state: "saved" | "saving" | "unsaved";
  /** Why it is unsaved (offline, or the server's save failed). */
  reason: string | null;
}

export function coeditSaveState(d: CollabDoc, conn: ConnState): CoeditSave {
  if (d.saved && matchesSaved(d.text.toString(), d.saved)) return { state: "saved", reason: null };
  if (d.saveError) return { state: "unsaved", reason: `save failed: ${d.saveError}` };
  if (conn !== "open" || !d.synced) return { state: "unsaved", reason: "offline: reconnecting to save" };
  return { state: "saving", reason: null };
}

export function presenceList(states: Map<number, PresenceState>, self: number): PresenceEntry[] {
  const out: PresenceEntry[] = [];
  for (const [clientId, s] of states) {
    if (!s || typeof s !== "object" || !s.user || typeof s.user.name !== "string") continue;
    out.push({
      clientId,
      name: s.user.name,
      color: typeof s.user.color === "string" ? s.user.color : "#888888",
      file: typeof s.file === "string" ? s.file : null,
      line: typeof s.line === "number" ? s.line : null,
      column: typeof s.column === "number" ? s.column : null,
      self: clientId === self,
    });
  }
  return out.sort((a, b) => Number(b.self) - Number(a.self) || a.name.localeCompare(b.name) || a.clientId - b.clientId);
}

export function useCollab(uuid: string, onError: (m: string) => void, onAccessChanged?: () => void) {
  const [live, setLiveState] = useState(() => localStorage.getItem(LIVE_KEY) !== "0");
  const [connState, setConnState] = useState<ConnState>("connecting");
  const [unavailable, setUnavailable] = useState<string | null>(null);
  /** Files that cannot be co-edited, with why (too large, binary...): edited single-user. */
  const [fallback, setFallback] = useState<ReadonlyMap<string, string>>(new Map());
  const [saveTick, setSaveTick] = useState(0);
  const accessRef = useRef(onAccessChanged);
  accessRef.current = onAccessChanged;
  const [user, setUser] = useState<CollabUser | null>(null);
  const [writable, setWritable] = useState(true);
  const [presence, setPresence] = useState<PresenceEntry[]>([]);
  const [docs, setDocs] = useState<ReadonlyMap<string, CollabDoc>>(new Map());
  const conn = useRef<CollabConnection | null>(null);
  const tab = useMemo(() => Math.random().toString(36).slice(2, 10), []);
  const errRef = useRef(onError);
  errRef.current = onError;
  const userRef = useRef<CollabUser | null>(null);

  useEffect(() => {
    let tickTimer: ReturnType<typeof setTimeout> | null = null;
    const bump = () => {
      if (tickTimer) return;
      tickTimer = setTimeout(() => {
        tickTimer = null;
        setSaveTick((n) => n + 1);
      }, 60);
    };
    let everOpen = false;
    const giveUp = setTimeout(() => {
      if (!everOpen) setUnavailable("the co-editing connection is not available");
    }, UNAVAILABLE_AFTER_MS);
    const c = new CollabConnection(wsUrl(`/api/sessions/${encodeURIComponent(uuid)}/collab`), {
      onHello: (u, w) => {
        userRef.current = u;
        setUser(u);
        setWritable(w);
      },
      onDoc: (d) => {
        const u = userRef.current;
        if (u) d.awareness.setLocalStateField("user", { name: u.name, color: u.color });
        d.doc.on("update", bump);
        setDocs((m) => new Map(m).set(d.path, d));
        bump();
      },
      onDocGone: (path, reason, message) => {
        setDocs((m) => {
          const n = new Map(m);
          n.delete(path);
          return n;
        });
        // Deleted or moved: the tab follows the tree; anything else: edited single-user, with why.
        if (reason !== "file_deleted" && reason !== "file_moved") setFallback((m) => new Map(m).set(path, message));
        errRef.current(`Co-editing of ${path} stopped: ${message}`);
      },
      onError: (m) => errRef.current(m),
      onPresence: (states) => setPresence(presenceList(states, c.presence.clientID)),
      onState: (st, code) => {
        setConnState(st);
        bump();
        if (st === "open") {
          everOpen = true;
          setUnavailable(null);
        } else if (st === "failed") {
          if (code === 4403) accessRef.current?.();
          else setUnavailable("the co-editing connection was refused");
        }
      },
      onSaveInfo: bump,
    });
    conn.current = c;
    c.connect();
    return () => {
      clearTimeout(giveUp);
      if (tickTimer) clearTimeout(tickTimer);
      conn.current = null;
      c.dispose();
      setDocs(new Map());
    };
  }, [uuid]);

  const saveStates = useMemo(() => {
    const out = new Map<string, CoeditSave>();
    for (const [p, d] of docs) out.set(p, coeditSaveState(d, connState));
    return out;
    // saveTick: a document changed or the server acknowledged a save.
  }, [docs, connState, saveTick]);

  const flush = useCallback(
    async (path: string): Promise<FlushResult> => {
      const c = conn.current;
      if (!c) return { ok: false, message: "the co-editing connection is not available" };
      const r = await c.flush(path, FLUSH_TIMEOUT_MS);
      setSaveTick((n) => n + 1);
      return r;
    },
    [],
  );

  const share = useCallback(
    (file: string | null, line: number | null, column: number | null) => {
      const u = user;
      if (!u || !conn.current) return;
      conn.current.setPresence({ user: { ...u, tab }, file, line, column });
    },
    [user, tab],
  );

  const setLive = useCallback((on: boolean) => {
    localStorage.setItem(LIVE_KEY, on ? "1" : "0");
    setLiveState(on);
    if (!on) {
      const c = conn.current;
      setDocs((m) => {
        for (const p of m.keys()) c?.leave(p);
        return new Map();
      });
    }
  }, []);

  const join = useCallback((path: string) => conn.current?.join(path), []);
  const leave = useCallback((path: string) => {
    conn.current?.leave(path);
    setDocs((m) => {
      if (!m.has(path)) return m;
      const n = new Map(m);
      n.delete(path);
      return n;
    });
  }, []);

  return { live, setLive, user, writable, presence, docs, share, join, leave, connState, unavailable, fallback, saveStates, flush };
}

export type Collab = ReturnType<typeof useCollab>;
