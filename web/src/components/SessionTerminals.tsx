/** "All terminals": every terminal of the session (those opened in other browser tabs too, which count against the limit), to open here or close. */
import { useCallback, useEffect, useRef, useState } from "react";
import { errorMessage } from "../api/errors";
import { closeTerminal, listTerminals } from "../api/sessions";
import type { TerminalInfo } from "../api/types";
import type { TerminalTabs } from "../modules/terminal/useTerminalTabs";

export function SessionTerminals({ sessionUuid, terminals }: { sessionUuid: string; terminals: TerminalTabs }) {
  const [open, setOpen] = useState(false);
  const [list, setList] = useState<TerminalInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const ref = useRef<HTMLDivElement>(null);

  const refresh = useCallback(async () => {
    try {
      setList(await listTerminals(sessionUuid));
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [sessionUuid]);

  useEffect(() => {
    if (!open) return;
    void refresh();
    const onDown = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener("mousedown", onDown);
    return () => document.removeEventListener("mousedown", onDown);
  }, [open, refresh]);

  const mine = new Set(terminals.tabs.map((t) => t.id));
  return (
    <div className="session-terminals" ref={ref}>
      <button className="btn btn-sm btn-ghost" aria-haspopup="true" aria-expanded={open} onClick={() => setOpen((o) => !o)} title="Every terminal of this session, from any browser tab">
        All terminals
      </button>
      {open && (
        <div className="session-terminals-menu" role="dialog" aria-label="Terminals of this session">
          {error && <div className="out-error">{error}</div>}
          {list === null ? (
            <div className="muted">Loading…</div>
          ) : list.length === 0 ? (
            <div className="muted">No terminal runs in this session (the sandbox may be stopped).</div>
          ) : (
            <ul>
              {list.map((t) => (
                <li key={t.id} data-testid="session-terminal">
                  <span className={`dot dot-${t.alive ? "running" : "stopped"}`} aria-hidden />
                  <code>{t.id.slice(0, 8)}</code>
                  <span className="muted">
                    {mine.has(t.id) ? "this tab" : t.attached > 0 ? `open in ${t.attached} other tab${t.attached > 1 ? "s" : ""}` : "not shown anywhere"}
                  </span>
                  {!mine.has(t.id) && (
                    <button
                      className="btn btn-sm"
                      onClick={() => {
                        terminals.adopt(t.id);
                        setOpen(false);
                      }}
                    >
                      Open here
                    </button>
                  )}
                  <button
                    className="btn btn-sm btn-ghost"
                    onClick={() => {
                      if (mine.has(t.id)) terminals.close(t.id);
                      else void closeTerminal(sessionUuid, t.id).catch(() => undefined);
                      setList((l) => (l ? l.filter((x) => x.id !== t.id) : l));
                    }}
                  >
                    Close
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
