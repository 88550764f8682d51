/** The terminals open in this browser tab for a session: ids kept in sessionStorage so a reload reattaches. */
import { useCallback, useEffect, useRef, useState } from "react";
import { closeTerminal, listTerminals } from "../../api/sessions";
import type { TerminalHandle } from "./terminalHandle";
import { adoptLiveTerminals, loadTerminalTabs, newTerminalId, nextTerminalTitle, safeSessionStorage, saveTerminalTabs, type TerminalTab } from "./terminalIds";
import type { ConnectionState } from "./terminalConnection";

export interface TerminalTabs {
  tabs: TerminalTab[];
  active: string | null;
  states: Record<string, ConnectionState>;
  add(): string;
  close(id: string): void;
  activate(id: string): void;
  setState(id: string, state: ConnectionState): void;
  setHandle(id: string, handle: TerminalHandle | null): void;
  /** The active terminal's handle, creating a terminal when there is none. */
  activeHandle(): TerminalHandle | null;
  /** Show a terminal of the session that this tab has no tab for (opened in another browser tab): attaches to it. */
  adopt(id: string): void;
}

/** How often a collaborator's tab looks for terminals others opened in the shared session. */
export const SHARED_TERMINALS_POLL_MS = 3000;

/**
 * ``shared``: the caller is a collaborator (not the owner) of a shared session: the session's
 * terminals are adopted as tabs (the same tabs as everyone's, live), and a new shell is opened
 * only when there is none and ``readOnly`` is false (a viewer cannot open one).
 */
export function useTerminalTabs(sessionUuid: string, opts: { shared?: boolean; readOnly?: boolean } = {}): TerminalTabs {
  const shared = opts.shared ?? false;
  const readOnly = opts.readOnly ?? false;
  const [tabs, setTabs] = useState<TerminalTab[]>(() => {
    const saved = loadTerminalTabs(safeSessionStorage(), sessionUuid);
    if (saved.length > 0 || shared) return saved;
    return [{ id: newTerminalId(), title: "Terminal 1" }];
  });
  const [active, setActive] = useState<string | null>(() => tabs[0]?.id ?? null);
  const [states, setStates] = useState<Record<string, ConnectionState>>({});
  const handles = useRef(new Map<string, TerminalHandle>());

  useEffect(() => saveTerminalTabs(safeSessionStorage(), sessionUuid, tabs), [sessionUuid, tabs]);

  useEffect(() => {
    if (!shared) return;
    let cancelled = false;
    let first = true;
    const sync = async () => {
      let live: string[] = [];
      try {
        live = (await listTerminals(sessionUuid)).filter((t) => t.alive).map((t) => t.id);
      } catch {
        /* the next poll tries again */
      }
      if (cancelled) return;
      const isFirst = first;
      setTabs((t) => adoptLiveTerminals(t, live, { first: isFirst, readOnly }));
      if (first) setActive((a) => a ?? live[0] ?? null);
      first = false;
    };
    void sync();
    const timer = setInterval(() => void sync(), SHARED_TERMINALS_POLL_MS);
    return () => {
      cancelled = true;
      clearInterval(timer);
    };
  }, [sessionUuid, shared, readOnly]);

  useEffect(() => {
    setActive((a) => a ?? tabs[0]?.id ?? null);
  }, [tabs]);

  const add = useCallback(() => {
    const id = newTerminalId();
    setTabs((t) => [...t, { id, title: nextTerminalTitle(t) }]);
    setActive(id);
    return id;
  }, []);

  const tabsRef = useRef(tabs);
  tabsRef.current = tabs;

  const close = useCallback(
    (id: string) => {
      const t = tabsRef.current;
      const idx = t.findIndex((x) => x.id === id);
      const rest = t.filter((x) => x.id !== id);
      setTabs(rest);
      setActive((a) => (a === id ? (rest[idx] ?? rest[idx - 1])?.id ?? null : a));
      // The shell ends on the server too; a failure (already gone) does not matter.
      closeTerminal(sessionUuid, id).catch(() => undefined);
    },
    [sessionUuid],
  );

  const setState = useCallback((id: string, s: ConnectionState) => setStates((m) => (m[id] === s ? m : { ...m, [id]: s })), []);
  const setHandle = useCallback((id: string, h: TerminalHandle | null) => {
    if (h) handles.current.set(id, h);
    else handles.current.delete(id);
  }, []);
  const activeHandle = useCallback(() => (active ? handles.current.get(active) ?? null : null), [active]);

  const adopt = useCallback((id: string) => {
    setTabs((t) => (t.some((x) => x.id === id) ? t : [...t, { id, title: nextTerminalTitle(t) }]));
    setActive(id);
  }, []);

  return { tabs, active, states, add, close, activate: setActive, setState, setHandle, activeHandle, adopt };
}
