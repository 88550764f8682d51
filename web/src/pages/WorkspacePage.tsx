/** The IDE for one workspace: explorer | editor tabs / terminals, wired to the API, the events socket and the terminals. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Link, useNavigate, useParams } from "../modules/router/router";
import { ApiError, errorMessage } from "../api/errors";
import { wsUrl } from "../api/http";
import * as sessionsApi from "../api/sessions";
import type { Session } from "../api/types";
import { Brand } from "../components/Brand";
import type { CursorPosition, RevealRequest } from "../components/CodeEditor";
import { ConfirmDialog, PromptDialog } from "../components/Dialog";
import { EditorArea } from "../components/EditorArea";
import { PresenceBar } from "../components/PresenceBar";
import { useCollab } from "../modules/collab/useCollab";
import { FileExplorer } from "../components/FileExplorer";
import { HistoryPanel } from "../components/HistoryPanel";
import { ArrowLeftIcon, DownloadIcon, GearIcon, MenuIcon, PlayIcon, StopIcon, UploadIcon } from "../components/Icons";
import { IdeSidebar, useFilePickers, type SidebarView } from "../components/IdeSidebar";
import { Palette } from "../components/Palette";
import { SearchPanel } from "../components/SearchPanel";
import { SettingsDialog } from "../components/SettingsDialog";
import { ShareDialog } from "../components/ShareDialog";
import { UploadPanel } from "../components/UploadPanel";
import { downloadUrl, exportZipUrl, importZip } from "../api/ide";
import type { IdeCommand } from "../modules/commands/commands";
import { downloadUrlInBrowser, useCommandShortcuts } from "../modules/commands/useCommandShortcuts";
import { useUploads, type PickedFile } from "../modules/files/upload";
import { usePreferences } from "../modules/settings/usePreferences";
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
import { leaveDashboardNotice } from "../modules/layout/dashboardNotice";
import { useToasts } from "../modules/layout/useToasts";
import { useRun } from "../modules/run/useRun";
import { useTerminalTabs } from "../modules/terminal/useTerminalTabs";
import { useTheme } from "../modules/theme/ThemeContext";

type SessionState = { status: "loading" } | { status: "error"; message: string; notFound: boolean } | { status: "ready"; session: Session };

export default function WorkspacePage() {
  const { uuid = "" } = useParams();
  const navigate = useNavigate();
  const [state, setState] = useState<SessionState>({ status: "loading" });
  const [attempt, setAttempt] = useState(0);

  // The server closed our sockets (4403): the owner changed our role or revoked our access.
  // Read the role again; a new role remounts the workspace (its sockets reconnect with it, the
  // open tabs come back from session storage), no access returns to the dashboard with a notice.
  const checking = useRef(false);
  const onAccessChanged = useCallback(() => {
    if (checking.current) return;
    checking.current = true;
    sessionsApi.getSession(uuid).then(
      (session) => {
        checking.current = false;
        setState((s) => (s.status === "ready" && s.session.role === session.role ? s : { status: "ready", session }));
      },
      (err: unknown) => {
        checking.current = false;
        if (err instanceof ApiError && (err.status === 404 || err.status === 403)) {
          leaveDashboardNotice(`Your access to the workspace “${state.status === "ready" ? state.session.name : uuid}” was removed by its owner.`);
          navigate("/");
        }
      },
    );
  }, [uuid, navigate, state]);

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
  return <Workspace key={`${uuid}:${state.session.role ?? ""}`} initial={state.session} onAccessChanged={onAccessChanged} />;
}

function Workspace({ initial, onAccessChanged }: { initial: Session; onAccessChanged: () => void }) {
  const uuid = initial.uuid;
  const { theme, toggle: toggleTheme } = useTheme();
  const [session, setSession] = useState(initial);
  // A viewer of a shared workspace reads only: the server refuses their writes and keystrokes.
  const viewer = session.role === "viewer";
  const [sharing, setSharing] = useState(false);
  const { toasts, push, dismiss } = useToasts();
  const pushError = useCallback((m: string) => push("error", m), [push]);
  const files = useWorkspaceFiles(uuid);
  const editor = useEditorTabs(uuid, pushError);
  const terminals = useTerminalTabs(uuid, { shared: initial.role !== "owner", readOnly: initial.role === "viewer" });
  const [showOutput, setShowOutput] = useState(false);
  const [showHistory, setShowHistory] = useState(false);
  const [sandbox, setSandbox] = useState<{ status: string; message: string | null }>({ status: initial.sandbox_status, message: null });
  const [sandboxBusy, setSandboxBusy] = useState(false);
  const [eventsState, setEventsState] = useState<EventsState>("connecting");
  const [cursor, setCursor] = useState<CursorPosition | null>(null);
  const [deleting, setDeleting] = useState<{ path: string; type: "file" | "folder" } | null>(null);
  const [renamingSession, setRenamingSession] = useState(false);
  const { dispatch } = editor;
  const { prefs, save: savePrefs } = usePreferences();
  const uploads = useUploads(uuid);
  const [sidebarView, setSidebarView] = useState<SidebarView>("files");
  const [searchFocus, setSearchFocus] = useState(0);
  const [palette, setPalette] = useState<"files" | "commands" | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [reveal, setReveal] = useState<RevealRequest | null>(null);
  const [drawerOpen, setDrawerOpen] = useState(false);

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
  const collab = useCollab(uuid, pushError, onAccessChanged);
  const collabDocsRef = useRef(collab.docs);
  collabDocsRef.current = collab.docs;

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
      if (collabDocsRef.current.has(tab.path)) {
        // Co-edited: the change is already in the shared document (merged by the server).
        dispatch({ type: "collab_synced", path: tab.path, version: v });
        continue;
      }
      if ((notified.current.get(tab.path) ?? 0) >= v) continue;
      notified.current.set(tab.path, v);
      dispatch({ type: "disk_changed", path: tab.path, version: v });
    }
  }, [files.items, files.state.status]);

  // ---- co-editing: join the open files' documents, share where we are, follow someone ----
  // Every open text file is co-edited (the default mode) unless the user turned it off, the
  // socket is unavailable, or the server refused the file (too large...): then single-user
  // saving, with the reason shown. A tab with unsaved single-user edits joins once saved (its
  // buffer would otherwise be replaced by the shared text).
  const joined = useRef(new Set<string>());
  const coeditOn = collab.live && collab.unavailable === null;
  useEffect(() => {
    const want = new Set(
      coeditOn
        ? editor.state.tabs
            .filter((t) => t.status === "ready" && !t.isBinary && !collab.fallback.has(t.path) && (joined.current.has(t.path) || !isDirty(t)))
            .map((t) => t.path)
        : [],
    );
    for (const p of want) if (!joined.current.has(p)) collab.join(p);
    for (const p of joined.current) if (!want.has(p)) collab.leave(p);
    joined.current = want;
  }, [coeditOn, collab.fallback, collab.join, collab.leave, editor.state.tabs]);
  /** Why the active file is edited single-user (null: co-edited, or joining). */
  const singleUserReason = (path: string | null): string | null => {
    if (!path) return null;
    if (!collab.live) return "co-editing is turned off";
    if (collab.unavailable) return collab.unavailable;
    return collab.fallback.get(path) ?? null;
  };
  const coeditJoining = (path: string | null) => path !== null && joined.current.has(path) && !collab.docs.has(path);
  const activePath = editor.state.active;
  useEffect(() => {
    collab.share(activePath, cursor?.line ?? null, cursor?.column ?? null);
  }, [collab.share, activePath, cursor?.line, cursor?.column]);
  const [following, setFollowing] = useState<number | null>(null);
  const followed = following === null ? undefined : collab.presence.find((e) => e.clientId === following);
  useEffect(() => {
    if (following !== null && !followed) setFollowing(null); // they left
    if (!followed?.file) return;
    dispatch({ type: "open", path: followed.file });
    if (followed.line) setReveal({ path: followed.file, line: followed.line, column: followed.column ?? 1, nonce: Date.now() });
  }, [following, followed?.file, followed?.line, followed?.column]);

  // ---- file operations ----
  const openFile = useCallback(
    (path: string) => {
      dispatch({ type: "open", path });
      setDrawerOpen(false);
    },
    [dispatch],
  );
  const openMatch = useCallback(
    (path: string, line: number, column: number) => {
      openFile(path);
      setReveal({ path, line, column, nonce: Date.now() });
    },
    [openFile],
  );
  const uploadInto = useCallback(
    async (folder: string, picked: PickedFile[]) => {
      const { done, failed } = await uploads.upload(folder, picked);
      if (failed) push("error", `${failed} of ${done + failed} uploads failed; see the list for why.`);
      else push("info", `Uploaded ${done} file${done === 1 ? "" : "s"}.`);
    },
    [uploads, push],
  );
  const pickers = useFilePickers((picked) => void uploadInto("", picked));
  const zipInput = useRef<HTMLInputElement>(null);
  const onZipPicked = async (e: React.ChangeEvent<HTMLInputElement>) => {
    const zip = e.target.files?.[0];
    e.target.value = "";
    if (!zip) return;
    try {
      const r = await importZip(uuid, zip, () => undefined);
      push("info", `Imported ${r.files} files from ${zip.name}.`);
    } catch (err) {
      push("error", `Could not import ${zip.name}: ${errorMessage(err)}`);
    }
  };
  const download = downloadUrlInBrowser;

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
  // A co-edited file is saved by the server (a save from here would race it and meet a 409).
  // A co-edited file: the server saves it (a save from here would race it); Ctrl+S and Run ask
  // the saver to save now and wait for its answer (whichever replica holds the document).
  const flushCoedit = collab.flush;
  const onSave = useCallback(
    (path: string) => {
      if (!collabDocsRef.current.has(path)) return void editor.save(path, { force: true });
      void flushCoedit(path).then((r) => {
        if (!r.ok) push("error", `Could not save ${path}: ${r.message}`);
      });
    },
    [editor, push, flushCoedit],
  );

  const onRun = useCallback(async () => {
    const tab = editor.activeTab;
    if (!tab || tab.status !== "ready") {
      push("info", "Open a file to run it.");
      return;
    }
    if (collabDocsRef.current.has(tab.path)) {
      // Run what the user sees: the last keystrokes may be younger than the save debounce.
      const r = await flushCoedit(tab.path);
      if (!r.ok) {
        push("error", `Not run: ${tab.path} could not be saved first (${r.message}).`);
        return;
      }
    } else if (isDirty(tab)) {
      const outcome = await editor.save(tab.path);
      if (outcome === "conflict" || outcome === "failed") return;
    }
    if (!runner.usesTerminal) setShowOutput(true);
    await runner.run(tab.path);
  }, [editor, runner, push, flushCoedit]);

  const commands = useMemo<IdeCommand[]>(
    () => [
      { id: "quick-open", title: "Go to file…", shortcut: "Ctrl+P", run: () => setPalette("files") },
      { id: "palette", title: "Show all commands", shortcut: "Ctrl+Shift+P", run: () => setPalette("commands") },
      { id: "search", title: "Search in files", shortcut: "Ctrl+Shift+F", run: () => (setSidebarView("search"), setDrawerOpen(true), setSearchFocus((n) => n + 1)) },
      { id: "explorer", title: "Show explorer", shortcut: "Ctrl+Shift+E", run: () => (setSidebarView("files"), setDrawerOpen(true)) },
      { id: "save", title: "Save file", shortcut: "Ctrl+S", run: () => editor.state.active && onSave(editor.state.active) },
      { id: "run", title: "Run the open file", shortcut: "Ctrl+Enter", run: () => void onRun() },
      { id: "upload-files", title: "Upload files…", run: pickers.pickFiles },
      { id: "upload-folder", title: "Upload a folder…", run: pickers.pickFolder },
      { id: "download-file", title: "Download the open file", run: () => editor.state.active && download(downloadUrl(uuid, editor.state.active)) },
      { id: "export-zip", title: "Download workspace as zip", run: () => download(exportZipUrl(uuid)) },
      { id: "import-zip", title: "Import a zip into the workspace…", run: () => zipInput.current?.click() },
      { id: "settings", title: "Open settings", shortcut: "Ctrl+,", run: () => setSettingsOpen(true) },
      { id: "theme", title: "Toggle dark/light theme", run: toggleTheme },
    ],
    [editor, onRun, onSave, pickers.pickFiles, pickers.pickFolder, uuid, toggleTheme],
  );
  useCommandShortcuts(commands, ["save", "run"]);

  // Ctrl/Cmd+S anywhere saves the active file (Monaco handles it itself when focused); Ctrl/Cmd+Enter runs.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey)) return;
      if (e.key.toLowerCase() === "s" && !e.shiftKey) {
        e.preventDefault();
        if (editor.state.active) onSave(editor.state.active);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [editor, onSave]);

  // Unsaved: single-user edits, or co-edits the server has not acknowledged as saved.
  const dirtyPaths = useMemo(() => {
    const out = new Set(editor.state.tabs.filter(isDirty).map((t) => t.path));
    for (const [p, st] of collab.saveStates) if (st.state !== "saved") out.add(p);
    return out;
  }, [editor.state.tabs, collab.saveStates]);
  // Leaving loses: single-user edits, and co-edits the server never got (offline) or could not
  // save. ("Saving": the server has them and saves them when the last editor leaves.)
  const atRisk = useMemo(
    () => [...dirtyPaths].some((p) => (collab.saveStates.get(p)?.state ?? "unsaved") === "unsaved"),
    [dirtyPaths, collab.saveStates],
  );
  useEffect(() => {
    if (!atRisk) return;
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      e.preventDefault();
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, [atRisk]);

  const onCloseTab = (path: string) => {
    const t = editor.state.tabs.find((x) => x.path === path);
    if (t && dirtyPaths.has(path) && !collab.saveStates.has(path) && !window.confirm(`${path} has unsaved changes. Close it and lose them?`)) return;
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
    <div className={`ide ${drawerOpen ? "is-drawer-open" : ""}`}>
      <header className="ide-header">
        <button className="icon-btn ide-drawer-toggle" aria-label="Show files" aria-expanded={drawerOpen} onClick={() => setDrawerOpen((o) => !o)}>
          <MenuIcon />
        </button>
        <Link to="/" className="icon-btn" aria-label="Back to workspaces" title="Back to workspaces">
          <ArrowLeftIcon />
        </Link>
        <Brand compact />
        <button className="ide-title" onClick={() => setRenamingSession(true)} title="Rename workspace">
          {session.name}
        </button>
        {session.forked_from_uuid && (
          <span className="ide-forked-from" title={`Forked from ${session.forked_from_name ?? ""}`}>
            forked from {session.forked_from_name}
          </span>
        )}
        {viewer && (
          <span className="ide-view-only" title="You are a viewer of this shared workspace: files and terminals are read-only">
            View only
          </span>
        )}
        <div className="ide-header-spacer" />
        <PresenceBar entries={collab.presence} live={collab.live} following={following} onLive={collab.setLive} onFollow={setFollowing} />
        <button className="btn btn-sm" onClick={() => setSharing(true)} title="Share this workspace">
          Share
        </button>
        <button className="btn btn-sm" onClick={() => setShowHistory(true)} title="File history, snapshots and trash">
          History
        </button>
        {runner.status !== "idle" ? (
          <button className="btn btn-sm" onClick={runner.stop} aria-label="Stop the run" title="Stop: kill the program and everything it started">
            <Spinner small label="Running" /> <StopIcon width={12} height={12} /> Stop
          </button>
        ) : (
          <button
            className="btn btn-sm btn-run"
            onClick={() => void onRun()}
            disabled={viewer || !activeTab || activeTab.status !== "ready"}
            title={viewer ? "A viewer cannot run" : activeTab ? `Run ${activeTab.path} (Ctrl+Enter)` : "Open a file to run it"}
          >
            <PlayIcon width={13} height={13} /> Run
          </button>
        )}
        <button className="icon-btn" aria-label="Settings" title="Settings (Ctrl+,)" onClick={() => setSettingsOpen(true)}>
          <GearIcon />
        </button>
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
            <IdeSidebar
              view={sidebarView}
              onView={setSidebarView}
              search={<SearchPanel uuid={uuid} onOpenMatch={openMatch} focusNonce={searchFocus} />}
              explorer={
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
              onUploadFiles={(folder, picked) => void uploadInto(folder, picked)}
              extraActions={
                <>
                  <button className="icon-btn" aria-label="Upload files" title="Upload files (or drop files and folders on the tree)" onClick={pickers.pickFiles}>
                    <UploadIcon />
                  </button>
                  <button className="icon-btn" aria-label="Download workspace as zip" title="Download workspace as zip" onClick={() => download(exportZipUrl(uuid))}>
                    <DownloadIcon />
                  </button>
                </>
              }
            />
              }
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
                  onEdit={(path, content) =>
                    dispatch(collab.docs.has(path) ? { type: "collab_synced", path, content } : { type: "edit", path, content })
                  }
                  onSave={onSave}
                  onRun={() => void onRun()}
                  onCursor={setCursor}
                  onReloadTheirs={(path) => dispatch({ type: "reload", path })}
                  onOverwrite={(path) => void editor.save(path, { overwrite: true })}
                  onDismissNotice={(path) => dispatch({ type: "dismiss_notice", path })}
                  uuid={uuid}
                  versionOf={(path) => files.items.find((i) => i.path === path)?.version ?? 0}
                  prefs={prefs}
                  reveal={reveal}
                  collabDocs={collab.docs}
                  unsavedPaths={dirtyPaths}
                  readOnly={viewer || !collab.writable || coeditJoining(editor.state.active)}
                />
              }
              second={
                viewer ? (
                  <div className="terminal-viewer-wrap">
                    <div className="terminal-read-only" role="note">Terminals are read-only for you (viewer): you watch what editors type.</div>
                    <TerminalPanel sessionUuid={uuid} theme={theme} terminals={terminals} runner={runner} showOutput={showOutput} onShowOutput={setShowOutput} sandboxRunning={sandbox.status === "running"} />
                  </div>
                ) : <TerminalPanel sessionUuid={uuid} theme={theme} terminals={terminals} runner={runner} showOutput={showOutput} onShowOutput={setShowOutput} sandboxRunning={sandbox.status === "running"} />
              }
            />
          }
        />
      </div>
      <StatusBar
        sandboxStatus={sandbox.status}
        sandboxMessage={sandbox.message}
        eventsState={eventsState}
        tab={activeTab}
        coedit={activeTab ? collab.saveStates.get(activeTab.path) ?? null : null}
        singleUserReason={viewer ? null : singleUserReason(activeTab?.path ?? null)}
        cursor={cursor}
        runsInTerminal={runner.usesTerminal}
        onStartSandbox={() => void startSandbox()}
        sandboxBusy={sandboxBusy}
      />
      <Toasts toasts={toasts} onDismiss={dismiss} />
      {showHistory && (
        <HistoryPanel
          uuid={uuid}
          path={editor.state.active}
          language={activeTab?.language ?? "plaintext"}
          theme={theme}
          onClose={() => setShowHistory(false)}
          onRestored={(paths, message) => {
            push("info", message);
            void files.refresh().catch(() => undefined);
            for (const t of editor.state.tabs) if (paths === null || paths.includes(t.path)) dispatch({ type: "reload", path: t.path });
          }}
        />
      )}
      {drawerOpen && <div className="drawer-scrim" onClick={() => setDrawerOpen(false)} aria-hidden />}
      <UploadPanel items={uploads.items} onClose={uploads.clear} />
      {pickers.pickers}
      <input ref={zipInput} type="file" accept=".zip,application/zip" hidden data-testid="import-zip-input" onChange={(e) => void onZipPicked(e)} />
      {palette && (
        <Palette mode={palette} paths={files.items.filter((i) => i.type === "file").map((i) => i.path)} commands={commands} onOpenFile={openFile} onClose={() => setPalette(null)} />
      )}
      {sharing && <ShareDialog sessionUuid={uuid} onClose={() => setSharing(false)} />}
      {settingsOpen && <SettingsDialog initial={prefs} onSave={savePrefs} onClose={() => setSettingsOpen(false)} />}
      {deleting && (
        <ConfirmDialog
          title={`Delete ${deleting.type === "folder" ? "folder" : "file"}?`}
          message={
            <>
              <strong>{deleting.path}</strong>
              {deleting.type === "folder" ? " and everything inside it" : ""} will be deleted. It goes to the trash (History → Trash).
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
