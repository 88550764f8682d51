/** The status bar: sandbox state, live-update connection, and the open file's language, cursor and save state. */
import type { EventsState } from "../modules/files/eventsConnection";
import type { CoeditSave } from "../modules/collab/useCollab";
import type { EditorTab } from "../modules/editor/editorTabs";
import { isDirty } from "../modules/editor/editorTabs";
import type { CursorPosition } from "./CodeEditor";

interface StatusBarProps {
  sandboxStatus: string;
  sandboxMessage: string | null;
  eventsState: EventsState;
  tab: EditorTab | null;
  /** The open file's save state when it is co-edited (the server saves it). */
  coedit?: CoeditSave | null;
  /** Why the open file is edited single-user (Ctrl+S saves), when co-editing does not apply. */
  singleUserReason?: string | null;
  cursor: CursorPosition | null;
  runsInTerminal: boolean;
  onStartSandbox(): void;
  sandboxBusy: boolean;
}

const EVENTS_LABEL: Record<EventsState, string> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  failed: "Offline",
  closed: "Offline",
};

export function StatusBar(props: StatusBarProps) {
  const { tab } = props;
  const canStart = props.sandboxStatus === "stopped" || props.sandboxStatus === "error";
  return (
    <footer className="status-bar" aria-label="Status">
      <span className="status-item" title={props.sandboxMessage ?? `Sandbox ${props.sandboxStatus}`} role="status">
        <span className={`dot dot-${props.sandboxStatus}`} aria-hidden />
        Sandbox: {props.sandboxStatus}
        {props.sandboxMessage ? ` — ${props.sandboxMessage}` : ""}
      </span>
      {canStart && (
        <button className="status-button" onClick={props.onStartSandbox} disabled={props.sandboxBusy}>
          {props.sandboxBusy ? "Starting…" : "Start"}
        </button>
      )}
      <span className="status-item" title="Live file updates from the workspace">
        <span className={`dot dot-${props.eventsState === "open" ? "running" : props.eventsState}`} aria-hidden />
        {EVENTS_LABEL[props.eventsState]}
      </span>
      {props.runsInTerminal && <span className="status-item" title="The server has no run endpoint: Run types the command in the terminal">Run: terminal</span>}
      <span className="status-spacer" />
      {tab && tab.status === "ready" && (
        <>
          {props.cursor && (
            <span className="status-item">
              Ln {props.cursor.line}, Col {props.cursor.column}
            </span>
          )}
          <span className="status-item">{tab.language}</span>
          <span className="status-item">v{tab.version}</span>
          {props.coedit ? (
            <span className="status-item" data-testid="save-state" data-mode="coedit" data-state={props.coedit.state} title="Co-edited: the server saves every change">
              {props.coedit.state === "saved" ? "Saved" : props.coedit.state === "saving" ? "Saving…" : `Unsaved — ${props.coedit.reason ?? ""}`}
            </span>
          ) : (
            <>
              {props.singleUserReason && (
                <span className="status-item status-single-user" data-testid="single-user-reason" title="This file is saved with Ctrl+S, without live co-editing">
                  Single-user: {props.singleUserReason}
                </span>
              )}
              <span className="status-item" data-testid="save-state" data-mode="single" data-state={tab.saving ? "saving" : isDirty(tab) ? "unsaved" : "saved"}>
                {tab.saving ? "Saving…" : isDirty(tab) ? "Unsaved" : "Saved"}
              </span>
            </>
          )}
        </>
      )}
    </footer>
  );
}
