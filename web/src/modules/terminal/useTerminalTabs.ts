/** The terminals open in this browser tab for a session: ids kept in sessionStorage so a reload reattaches. */
import { useCallback, useEffect, useRef, useState } from "react";
import { closeTerminal } from "../../api/sessions";
import type { TerminalHandle } from "./terminalHandle";
import { loadTerminalTabs, newTerminalId, nextTerminalTitle, safeSessionStorage, saveTerminalTabs, type TerminalTab } from "./terminalIds";
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

export function useTerminalTabs(sessionUuid: string): TerminalTabs {
  const [tabs, setTabs] = useState<TerminalTab[]>(() => {
    const saved = loadTerminalTabs(safeSessionStorage(), sessionUuid);
    return saved.length > 0 ? saved : [{ id: newTerminalId(), title: "Terminal 1" }];
  });
  const [active, setActive] = useState<string | null>(() => tabs[0]?.id ?? null);
  const [states, setStates] = useState<Record<string, ConnectionState>>({});
  const handles = useRef(new Map<string, TerminalHandle>());

  useEffect(() => saveTerminalTabs(safeSessionStorage(), sessionUuid, tabs), [sessionUuid, tabs]);

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
