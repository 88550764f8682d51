/** Search across the workspace's files (served by the database: works with the sandbox stopped); results grouped by file, a click jumps to the line. The first page shows at once; "Load more results" appends the next one (the server's `next` cursor). */
import { useEffect, useRef, useState } from "react";
import { errorMessage } from "../api/errors";
import { searchWorkspace, type SearchOptions } from "../api/ide";
import type { SearchResult } from "../api/types";
import { appendSearchPage } from "../modules/search/searchPages";
import { Spinner } from "./PageStates";

/** The next page's request: idle, in flight, or failed (the shown results stay). */
type More = { status: "idle" } | { status: "loading" } | { status: "error"; message: string };
/** `query`/`opts`: what the shown results are for (a cursor is only valid with them). */
type State = { status: "idle" } | { status: "loading" } | { status: "error"; message: string } | { status: "ready"; result: SearchResult; query: string; opts: SearchOptions; more: More };

function Line({ text, ranges }: { text: string; ranges: [number, number][] }) {
  const parts: React.ReactNode[] = [];
  let at = 0;
  ranges.forEach(([s, e], i) => {
    if (s > at) parts.push(text.slice(at, s));
    parts.push(
      <mark key={i} className="search-hl">
        {text.slice(s, e)}
      </mark>,
    );
    at = e;
  });
  parts.push(text.slice(at));
  return <>{parts}</>;
}

export function SearchPanel({ uuid, onOpenMatch, focusNonce }: { uuid: string; onOpenMatch(path: string, line: number, column: number): void; focusNonce: number }) {
  const [query, setQuery] = useState("");
  const [opts, setOpts] = useState<SearchOptions>({ regex: false, caseSensitive: false, wholeWord: false, include: "", exclude: "" });
  const [state, setState] = useState<State>({ status: "idle" });
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const inputRef = useRef<HTMLInputElement>(null);
  // The search in progress: a new search aborts its pages still in flight.
  const searchCtrl = useRef<AbortController | null>(null);

  useEffect(() => inputRef.current?.focus(), [focusNonce]);

  useEffect(() => {
    if (!query) {
      setState({ status: "idle" });
      return;
    }
    const ctrl = new AbortController();
    searchCtrl.current = ctrl;
    const timer = setTimeout(() => {
      setState({ status: "loading" });
      searchWorkspace(uuid, query, opts, ctrl.signal).then(
        (result) => !ctrl.signal.aborted && setState({ status: "ready", result, query, opts, more: { status: "idle" } }),
        (err: unknown) => !ctrl.signal.aborted && setState({ status: "error", message: errorMessage(err) }),
      );
    }, 200);
    return () => {
      clearTimeout(timer);
      ctrl.abort();
    };
  }, [uuid, query, opts]);

  const loadMore = () => {
    const ctrl = searchCtrl.current;
    if (state.status !== "ready" || !state.result.next || state.more.status === "loading" || !ctrl) return;
    const shown = state;
    const after = state.result.next;
    setState({ ...shown, more: { status: "loading" } });
    searchWorkspace(uuid, shown.query, shown.opts, ctrl.signal, after).then(
      (page) => !ctrl.signal.aborted && setState((s) => (s.status === "ready" && s.result.next === after ? { ...s, result: appendSearchPage(s.result, page), more: { status: "idle" } } : s)),
      (err: unknown) => !ctrl.signal.aborted && setState((s) => (s.status === "ready" && s.result.next === after ? { ...s, more: { status: "error", message: errorMessage(err) } } : s)),
    );
  };

  const toggle = (key: "regex" | "caseSensitive" | "wholeWord", label: string, text: string) => (
    <button type="button" className={`search-toggle ${opts[key] ? "is-on" : ""}`} aria-pressed={opts[key]} aria-label={label} title={label} onClick={() => setOpts((o) => ({ ...o, [key]: !o[key] }))}>
      {text}
    </button>
  );

  return (
    <section className="search-panel" aria-label="Search">
      <div className="search-form">
        <div className="search-row">
          <input ref={inputRef} className="input search-input" placeholder="Search" aria-label="Search text" value={query} onChange={(e) => setQuery(e.target.value)} />
          {toggle("caseSensitive", "Match case", "Aa")}
          {toggle("wholeWord", "Match whole word", "ab")}
          {toggle("regex", "Use regular expression", ".*")}
        </div>
        <input className="input" placeholder="files to include (e.g. *.py, src/**)" aria-label="Files to include" value={opts.include} onChange={(e) => setOpts((o) => ({ ...o, include: e.target.value }))} />
        <input className="input" placeholder="files to exclude" aria-label="Files to exclude" value={opts.exclude} onChange={(e) => setOpts((o) => ({ ...o, exclude: e.target.value }))} />
      </div>
      <div className="search-results">
        {state.status === "loading" && <Spinner small label="Searching" />}
        {state.status === "error" && (
          <div className="search-error" role="alert">
            {state.message}
          </div>
        )}
        {state.status === "ready" && (
          <>
            <div className="search-summary" aria-live="polite">
              {state.result.match_count === 0
                ? "No results"
                : `${state.result.match_count} result${state.result.match_count === 1 ? "" : "s"} in ${state.result.files.length} file${state.result.files.length === 1 ? "" : "s"}${state.result.next ? " (more available)" : ""}`}
            </div>
            <ul className="search-files">
              {state.result.files.map((f) => (
                <li key={f.path} className="search-file" data-path={f.path}>
                  <button
                    className="search-file-head"
                    aria-expanded={!collapsed.has(f.path)}
                    onClick={() =>
                      setCollapsed((c) => {
                        const n = new Set(c);
                        if (n.has(f.path)) n.delete(f.path);
                        else n.add(f.path);
                        return n;
                      })
                    }
                  >
                    <span className="search-file-name">{f.path}</span>
                    <span className="search-count">{f.matches.length}</span>
                  </button>
                  {!collapsed.has(f.path) && (
                    <ul>
                      {f.matches.map((m) => (
                        <li key={m.line}>
                          <button className="search-match" onClick={() => onOpenMatch(f.path, m.line, (m.ranges[0]?.[0] ?? 0) + 1)} title={`${f.path}:${m.line}`}>
                            <span className="search-line-no">{m.line}</span>
                            <span className="search-line">
                              <Line text={m.text} ranges={m.ranges} />
                            </span>
                          </button>
                        </li>
                      ))}
                    </ul>
                  )}
                </li>
              ))}
            </ul>
            {state.more.status === "error" && (
              <div className="search-error" role="alert">
                {state.more.message}
              </div>
            )}
            {state.result.next && (
              <button type="button" className="btn btn-sm search-more" onClick={loadMore} disabled={state.more.status === "loading"}>
                {state.more.status === "loading" ? "Loading more results…" : "Load more results"}
              </button>
            )}
          </>
        )}
      </div>
    </section>
  );
}
