/** The IDE for one workspace: explorer | editor tabs / terminals, wired to the API, the events socket and the terminals. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useParams } from "../modules/router/router";
import { ApiError, errorMessage } from "../api/errors";
import { wsUrl } from "../api/http";
import * as sessionsApi from "../api/sessions";
import type { Session } from "../api/types";
import { Brand } from "../components/Brand";
import type { CursorPosition } from "../components/CodeEditor";
import { ConfirmDialog, PromptDialog } from "../components/Dialog";
import { EditorArea } from "../components/EditorArea";
import { FileExplorer } from "../components/FileExplorer";
import { ArrowLeftIcon, PlayIcon, StopIcon } from "../components/Icons";
import { FullPageError, FullPageSpinner, Spinner } from "../components/PageStates";
import { Splitter } from "../components/Splitter";
import { StatusBar } from "../components/StatusBar";
import { SandboxNotice } from "../components/SandboxNotice";
import { TerminalPanel } from "../components/TerminalPanel";
import { ThemeToggle } from "../components/ThemeToggle";
import { Toasts } from "../components/Toasts";
import { isDirty } from "../modules/editor/editorTabs";
import { useEditorTabs } from "../modules/editor/useEditorTabs";
import { EventsConnection, type EventsState } from "../modules/files/eventsConnection";
import { isSameOrInside } from "../modules/files/paths";
import { useWorkspaceFiles } from "../modules/files/useWorkspaceFiles";
import { syncNotice, type WorkspaceEvent } from "../modules/files/workspaceEvents";
import { useToasts } from "../modules/layout/useToasts";
import { useRun } from "../modules/run/useRun";
import { useTerminalTabs } from "../modules/terminal/useTerminalTabs";
import { useTheme } from "../modules/theme/ThemeContext";

type SessionState = { status: "loading" } | { status: "error"; message: string; notFound: boolean } | { status: "ready"; session: Session };

export default function WorkspacePage() {
  const { uuid = "" } = useParams();
  const [state, setState] = useState<SessionState>({ status: "loading" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let cancelled = false;
    setState({ status: "loading" });
    sessionsApi.getSession(uuid).then(
      (session) => !cancelled && setState({ status: "ready", session }),
      (err: unknown) => !cancelled && setState({ status: "error", message: errorMessage(err), notFound: err instanceof ApiError && err.status === 404 }),
    );
    return () => {
      cancelled = true;
    };
  }, [uuid, attempt]);

  if (state.status === "loading") return <FullPageSpinner label="Opening workspace…" />;
  if (state.status === "error") {
    return (
      <FullPageError
        title={state.notFound ? "Workspace not found" : "Could not open the workspace"}
        message={state.notFound ? "It may have been deleted, or it belongs to another account." : state.message}
        onRetry={state.notFound ? undefined : () => setAttempt((a) => a + 1)}
      >
        <Link className="btn" to="/">
          Back to workspaces
        </Link>
      </FullPageError>
    );
  }
  return <Workspace key={uuid} initial={state.session} />;
}

function Workspace({ initial }: { initial: Session }) {
  const uuid = initial.uuid;
  const { theme } = useTheme();
  const [session, setSession] = useState(initial);
  const { toasts, push, dismiss } = useToasts();
  const pushError = useCallback((m: string) => push("error", m), [push]);
  const files = useWorkspaceFiles(uuid);
  const editor = useEditorTabs(uuid, pushError);
  const terminals = useTerminalTabs(uuid);
  const [showOutput, setShowOutput] = useState(false);
  const [sandbox, setSandbox] = useState<{ status: string; message: string | null }>({ status: initial.sandbox_status, message: null });
  const [sandboxBusy, setSandboxBusy] = useState(false);
  const [eventsState, setEventsState] = useState<EventsState>("connecting");
  const [cursor, setCursor] = useState<CursorPosition | null>(null);
  const [deleting, setDeleting] = useState<{ path: string; type: "file" | "folder" } | null>(null);
  const [renamingSession, setRenamingSession] = useState(false);
  const { dispatch } = editor;

  const typeInTerminal = useCallback(
    (command: string) => {
      const handle = terminals.activeHandle();
      if (!handle) {
        push("error", "Open a terminal to run the file.");
        return false;
      }
      setShowOutput(false);
      handle.sendInput(command);
      handle.focus();
      return true;
    },
    [terminals, push],
  );
  const runner = useRun(uuid, typeInTerminal);

  // ---- workspace events ----
  const filesRef = useRef(files);
  filesRef.current = files;
  useEffect(() => {
    const onEvent = (ev: WorkspaceEvent) => {
      filesRef.current.applyEvent(ev);
      switch (ev.type) {
        case "file_deleted":
          dispatch({ type: "disk_deleted", path: ev.path });
          break;
        case "file_moved":
          dispatch({ type: "disk_moved", from: ev.from, to: ev.to });
          break;
        case "sandbox_status":
          setSandbox({ status: ev.status, message: ev.message ?? null });
          break;
        case "conflict":
          push("info", ev.message || `Conflicting edits to ${ev.path}: the other version was kept as ${ev.conflict_path}.`);
          break;
        case "sync_error":
        case "resync": {
          const notice = syncNotice(ev);
          if (notice) push(ev.type === "sync_error" ? "error" : "info", notice);
          break;
        }
        case "file_changed":
          break; // tabs follow the item list (below)
      }
    };
    const conn = new EventsConnection({
      url: wsUrl(`/api/sessions/${encodeURIComponent(uuid)}/events`),
      createSocket: (url) => new WebSocket(url),
      onEvent,
      onState: setEventsState,
      onResync: () => void filesRef.current.refresh().catch(() => undefined),
    });
    conn.connect();
    const onOnline = () => conn.reconnectNow();
    window.addEventListener("online", onOnline);
    return () => {
      window.removeEventListener("online", onOnline);
      conn.dispose();
    };
  }, [uuid, dispatch, push]);

  // Open tabs follow the item list: a newer version on disk reloads a clean tab or shows a notice on a dirty one.
  const notified = useRef(new Map<string, number>());
  useEffect(() => {
    if (files.state.status !== "ready") return;
    const versions = new Map(files.items.map((i) => [i.path, i.version]));
    for (const tab of editor.state.tabs) {
      const v = versions.get(tab.path);
      if (v === undefined || tab.status !== "ready" || v <= tab.version) continue;
      if ((notified.current.get(tab.path) ?? 0) >= v) continue;
      notified.current.set(tab.path, v);
      dispatch({ type: "disk_changed", path: tab.path, version: v });
    }
  }, [files.items, files.state.status]);

  // ---- file operations ----
  const openFile = useCallback((path: string) => dispatch({ type: "open", path }), [dispatch]);

  const onCreate = useCallback(
    async (kind: "file" | "folder", path: string) => {
      try {
        if (kind === "file") await files.createFile(path);
        else await files.createFolder(path);
        return true;
      } catch (err) {
        push("error", `Could not create ${path}: ${errorMessage(err)}`);
        return false;
      }
    },
    [files, push],
  );
  const onMove = useCallback(
    async (from: string, to: string) => {
      try {
        await files.move(from, to);
        dispatch({ type: "disk_moved", from, to });
        return true;
      } catch (err) {
        push("error", `Could not move ${from}: ${errorMessage(err)}`);
        return false;
      }
    },
    [files, dispatch, push],
  );
  const confirmDelete = async () => {
    if (!deleting) return;
    const { path } = deleting;
    setDeleting(null);
    try {
      await files.remove(path);
      for (const t of editor.state.tabs) if (isSameOrInside(t.path, path)) dispatch({ type: "close", path: t.path });
    } catch (err) {
      push("error", `Could not delete ${path}: ${errorMessage(err)}`);
    }
  };

  // ---- save, run ----
  const activeTab = editor.activeTab;
  const onSave = useCallback((path: string) => void editor.save(path, { force: true }), [editor]);

  const onRun = useCallback(async () => {
    const tab = editor.activeTab;
    if (!tab || tab.status !== "ready") {
      push("info", "Open a file to run it.");
      return;
    }
    if (isDirty(tab)) {
      const outcome = await editor.save(tab.path);
      if (outcome === "conflict" || outcome === "failed") return;
    }
    if (!runner.usesTerminal) setShowOutput(true);
    await runner.run(tab.path);
  }, [editor, runner, push]);

  // Ctrl/Cmd+S anywhere saves the active file (Monaco handles it itself when focused); Ctrl/Cmd+Enter runs.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey)) return;
      if (e.key.toLowerCase() === "s" && !e.shiftKey) {
        e.preventDefault();
        if (editor.state.active) void editor.save(editor.state.active, { force: true });
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [editor]);

  const dirtyPaths = useMemo(() => new Set(editor.state.tabs.filter(isDirty).map((t) => t.path)), [editor.state.tabs]);
  useEffect(() => {
    if (dirtyPaths.size === 0) return;
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, [dirtyPaths]);

  const onCloseTab = (path: string) => {
    const t = editor.state.tabs.find((x) => x.path === path);
    if (t && isDirty(t) && !window.confirm(`${path} has unsaved changes. Close it and lose them?`)) return;
    dispatch({ type: "close", path });
  };

  const startSandbox = async () => {
    setSandboxBusy(true);
    try {
      const res = await sessionsApi.startSandbox(uuid);
      setSandbox({ status: res.status, message: null });
    } catch (err) {
      push("error", `Could not start the sandbox: ${errorMessage(err)}`);
    } finally {
      setSandboxBusy(false);
    }
  };

  const renameSession = async (name: string) => {
    try {
      setSession(await sessionsApi.updateSession(uuid, { name }));
      setRenamingSession(false);
    } catch (err) {
      push("error", `Could not rename: ${errorMessage(err)}`);
    }
  };

  return (
    <div className="ide">
      <header className="ide-header">
        <Link to="/" className="icon-btn" aria-label="Back to workspaces" title="Back to workspaces">
          <ArrowLeftIcon />
        </Link>
        <Brand compact />
        <button className="ide-title" onClick={() => setRenamingSession(true)} title="Rename workspace">
          {session.name}
        </button>
        <div className="ide-header-spacer" />
        {runner.status !== "idle" ? (
          <button className="btn btn-sm" onClick={runner.stop} aria-label="Stop the run" title="Stop: kill the program and everything it started">
            <Spinner small label="Running" /> <StopIcon width={12} height={12} /> Stop
          </button>
        ) : (
          <button
            className="btn btn-sm btn-run"
            onClick={() => void onRun()}
            disabled={!activeTab || activeTab.status !== "ready"}
            title={activeTab ? `Run ${activeTab.path} (Ctrl+Enter)` : "Open a file to run it"}
          >
            <PlayIcon width={13} height={13} /> Run
          </button>
        )}
        <ThemeToggle />
      </header>
      <SandboxNotice status={sandbox.status} message={sandbox.message} onStart={() => void startSandbox()} />
      <div className="ide-main">
        <Splitter
          direction="horizontal"
          storageKey="explorer"
          defaultSize={250}
          min={160}
          max={520}
          label="Resize the file explorer"
          first={
            <FileExplorer
              items={files.items}
              state={files.state}
              activePath={editor.state.active}
              dirtyPaths={dirtyPaths}
              onOpen={openFile}
              onCreate={onCreate}
              onMove={onMove}
              onDelete={(path, type) => setDeleting({ path, type })}
              onRefresh={() => void files.refresh().catch((err: unknown) => push("error", errorMessage(err)))}
            />
          }
          second={
            <Splitter
              direction="vertical"
              storageKey="terminal"
              defaultSize={260}
              min={90}
              max={900}
              sizeSecond
              label="Resize the terminal panel"
              first={
                <EditorArea
                  tabs={editor.state}
                  theme={theme}
                  onActivate={(path) => dispatch({ type: "activate", path })}
                  onClose={onCloseTab}
                  onEdit={(path, content) => dispatch({ type: "edit", path, content })}
                  onSave={onSave}
                  onRun={() => void onRun()}
                  onCursor={setCursor}
                  onReloadTheirs={(path) => dispatch({ type: "reload", path })}
                  onOverwrite={(path) => void editor.save(path, { overwrite: true })}
                  onDismissNotice={(path) => dispatch({ type: "dismiss_notice", path })}
                />
              }
              second={<TerminalPanel sessionUuid={uuid} theme={theme} terminals={terminals} runner={runner} showOutput={showOutput} onShowOutput={setShowOutput} sandboxRunning={sandbox.status === "running"} />}
            />
          }
        />
      </div>
      <StatusBar
        sandboxStatus={sandbox.status}
        sandboxMessage={sandbox.message}
        eventsState={eventsState}
        tab={activeTab}
        cursor={cursor}
        runsInTerminal={runner.usesTerminal}
        onStartSandbox={() => void startSandbox()}
        sandboxBusy={sandboxBusy}
      />
      <Toasts toasts={toasts} onDismiss={dismiss} />
      {deleting && (
        <ConfirmDialog
          title={`Delete ${deleting.type === "folder" ? "folder" : "file"}?`}
          message={
            <>
              <strong>{deleting.path}</strong>
              {deleting.type === "folder" ? " and everything inside it" : ""} will be deleted. This cannot be undone.
            </>
          }
          confirmLabel="Delete"
          danger
          onConfirm={() => void confirmDelete()}
          onCancel={() => setDeleting(null)}
        />
      )}
      {renamingSession && (
        <PromptDialog
          title="Rename workspace"
          label="Name"
          initialValue={session.name}
          confirmLabel="Rename"
          validate={(v) => (v.trim() ? null : "A name is required.")}
          onConfirm={(v) => void renameSession(v)}
          onCancel={() => setRenamingSession(false)}
        />
      )}
    </div>
  );
}
