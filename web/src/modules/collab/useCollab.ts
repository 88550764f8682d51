/** Live co-editing of a workspace for the IDE: the connection, who is here (presence) and the synced document of each open file. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { wsUrl } from "../../api/http";
import { CollabConnection, type CollabDoc, type CollabUser, type PresenceState } from "./collabConnection";

export interface PresenceEntry {
  clientId: number;
  name: string;
  color: string;
  file: string | null;
  line: number | null;
  column: number | null;
  self: boolean;
}

const LIVE_KEY = "cc-live-coedit";

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

export function useCollab(uuid: string, onError: (m: string) => void) {
  const [live, setLiveState] = useState(() => localStorage.getItem(LIVE_KEY) === "1");
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
    const c = new CollabConnection(wsUrl(`/api/sessions/${encodeURIComponent(uuid)}/collab`), {
      onHello: (u, w) => {
        userRef.current = u;
        setUser(u);
        setWritable(w);
      },
      onDoc: (d) => {
        const u = userRef.current;
        if (u) d.awareness.setLocalStateField("user", { name: u.name, color: u.color });
        setDocs((m) => new Map(m).set(d.path, d));
      },
      onDocGone: (path, _reason, message) => {
        setDocs((m) => {
          const n = new Map(m);
          n.delete(path);
          return n;
        });
        errRef.current(`Co-editing of ${path} stopped: ${message}`);
      },
      onError: (m) => errRef.current(m),
      onPresence: (states) => setPresence(presenceList(states, c.presence.clientID)),
      onState: () => undefined,
    });
    conn.current = c;
    c.connect();
    return () => {
      conn.current = null;
      c.dispose();
      setDocs(new Map());
    };
  }, [uuid]);

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

  return { live, setLive, user, writable, presence, docs, share, join, leave };
}

export type Collab = ReturnType<typeof useCollab>;
