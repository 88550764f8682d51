/** One xterm.js terminal bound to a TerminalConnection; fits its panel and is disposed on unmount. */
import { FitAddon } from "@xterm/addon-fit";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { Terminal, type ITheme } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { wsUrl } from "../api/http";
import { TerminalConnection, type ConnectionState } from "../modules/terminal/terminalConnection";
import type { ServerControl } from "../modules/terminal/protocol";
import type { TerminalHandle } from "../modules/terminal/terminalHandle";

const THEMES: Record<"dark" | "light", ITheme> = {
  dark: { background: "#0c0e13", foreground: "#d7dae0", cursor: "#7aa7ff", selectionBackground: "#2f4a7a" },
  light: {
    background: "#ffffff", foreground: "#1d2230", cursor: "#2563eb", selectionBackground: "#c7d7fb",
    black: "#1d2230", red: "#c62828", green: "#2e7d32", yellow: "#9a6700", blue: "#1d4fd8", magenta: "#8e24aa", cyan: "#00838f", white: "#5f6776",
    brightBlack: "#5f6776", brightRed: "#d32f2f", brightGreen: "#388e3c", brightYellow: "#a16207", brightBlue: "#2563eb", brightMagenta: "#9c27b0", brightCyan: "#0097a7", brightWhite: "#8a92a3",
  },
};

interface TerminalViewProps {
  sessionUuid: string;
  terminalId: string;
  active: boolean;
  theme: "dark" | "light";
  onState(id: string, state: ConnectionState, detail: string | null): void;
  onControl?(id: string, msg: ServerControl): void;
  onHandle(id: string, handle: TerminalHandle | null): void;
}

export function TerminalView(props: TerminalViewProps) {
  const { sessionUuid, terminalId } = props;
  const hostRef = useRef<HTMLDivElement>(null);
  const termRef = useRef<Terminal | null>(null);
  const fitRef = useRef<FitAddon | null>(null);
  const connRef = useRef<TerminalConnection | null>(null);
  const latest = useRef(props);
  latest.current = props;
  const [state, setState] = useState<{ state: ConnectionState; detail: string | null }>({ state: "connecting", detail: null });

  useEffect(() => {
    const host = hostRef.current;
    if (!host) return;
    const term = new Terminal({
      fontFamily: "'JetBrains Mono', ui-monospace, monospace",
      fontSize: 13,
      cursorBlink: true,
      scrollback: 5000,
      allowProposedApi: false,
      theme: THEMES[latest.current.theme],
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.loadAddon(new WebLinksAddon());
    term.open(host);
    termRef.current = term;
    fitRef.current = fit;
    try {
      fit.fit();
    } catch {
      /* hidden panel: fitted when shown */
    }

    // Set by the server's ``ready`` (a viewer of a shared workspace): keystrokes are not sent.
    let readOnly = false;
    const conn = new TerminalConnection({
      url: (cols, rows) => wsUrl(`/api/sessions/${encodeURIComponent(sessionUuid)}/terminals/${encodeURIComponent(terminalId)}`, { cols, rows }),
      createSocket: (url) => new WebSocket(url),
      cols: term.cols,
      rows: term.rows,
      events: {
        output: (data, parsed) => term.write(data, parsed),
        reset: () => term.reset(),
        state: (s, detail) => {
          setState({ state: s, detail });
          latest.current.onState(terminalId, s, detail);
          if (s === "exited") term.write(`\r\n\x1b[2m[${detail ?? "process exited"} Press Enter to start a new shell.]\x1b[0m\r\n`);
        },
        control: (msg) => {
          if (msg.type === "ready" && msg.read_only) {
            readOnly = true;
            term.write("\x1b[2m[read-only: you watch this terminal as a viewer]\x1b[0m\r\n");
          }
          if (msg.type === "error") term.write(`\r\n\x1b[31m[${msg.message}]\x1b[0m\r\n`);
          latest.current.onControl?.(terminalId, msg);
        },
      },
    });
    connRef.current = conn;

    const dataSub = term.onData((data) => {
      if (readOnly) return; // a viewer: the server would refuse it anyway
      if (conn.state === "exited" || conn.state === "failed") {
        if (data === "\r") {
          term.reset();
          conn.restart();
        }
        return;
      }
      conn.sendInput(data);
    });
    const resizeSub = term.onResize(({ cols, rows }) => conn.resize(cols, rows));
    // Ctrl/Cmd+Shift+C copies the selection, Ctrl/Cmd+Shift+V pastes (plain Ctrl+C stays SIGINT).
    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== "keydown" || !(e.ctrlKey || e.metaKey) || !e.shiftKey) return true;
      const key = e.key.toLowerCase();
      if (key === "c" && term.hasSelection()) {
        void navigator.clipboard?.writeText(term.getSelection()).catch(() => undefined);
        return false;
      }
      if (key === "v") {
        navigator.clipboard?.readText().then((t) => t && term.paste(t)).catch(() => undefined);
        return false;
      }
      return true;
    });

    const observer = new ResizeObserver(() => {
      if (host.offsetWidth > 0 && host.offsetHeight > 0) {
        try {
          fit.fit();
        } catch {
          /* not visible */
        }
      }
    });
    observer.observe(host);
    const onOnline = () => conn.reconnectNow();
    window.addEventListener("online", onOnline);

    latest.current.onHandle(terminalId, {
      sendInput: (text) => conn.sendInput(text),
      focus: () => term.focus(),
    });
    conn.connect();

    return () => {
      latest.current.onHandle(terminalId, null);
      window.removeEventListener("online", onOnline);
      observer.disconnect();
      dataSub.dispose();
      resizeSub.dispose();
      conn.dispose();
      term.dispose();
      termRef.current = null;
      fitRef.current = null;
      connRef.current = null;
    };
  }, [sessionUuid, terminalId]);

  useEffect(() => {
    if (termRef.current) termRef.current.options.theme = THEMES[props.theme];
  }, [props.theme]);

  useEffect(() => {
    if (props.active) {
      requestAnimationFrame(() => {
        try {
          fitRef.current?.fit();
        } catch {
          /* ignore */
        }
        termRef.current?.focus();
      });
    }
  }, [props.active]);

  const overlay =
    state.state === "reconnecting" ? "Connection lost. Reconnecting to the same shell…" : state.state === "failed" ? (state.detail ?? "The terminal could not connect.") : null;

  return (
    <div className="terminal-view" hidden={!props.active}>
      <div ref={hostRef} className="terminal-host" aria-label={`Terminal ${terminalId}`} />
      {overlay && (
        <div className={`terminal-banner ${state.state === "failed" ? "terminal-banner-error" : ""}`} role="status">
          {state.state === "reconnecting" && <span className="spinner spinner-sm" aria-hidden />}
          {overlay}
          {state.state === "failed" && (
            <button className="btn btn-sm" onClick={() => connRef.current?.restart()}>
              Retry
            </button>
          )}
        </div>
      )}
    </div>
  );
}
