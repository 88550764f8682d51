/** The editor column: tabs with dirty markers, the notice about the file on disk, and the (lazily loaded) Monaco editor. */
import { lazy, Suspense, type KeyboardEvent } from "react";
import { isDirty, type DiskNotice, type EditorTab, type TabsState } from "../modules/editor/editorTabs";
import { fileIcon } from "../modules/files/fileIcons";
import { baseName } from "../modules/files/paths";
import type { CursorPosition } from "./CodeEditor";
import { CloseIcon } from "./Icons";
import { Spinner } from "./PageStates";

const CodeEditor = lazy(() => import("./CodeEditor"));

interface EditorAreaProps {
  tabs: TabsState;
  theme: "dark" | "light";
  onActivate(path: string): void;
  onClose(path: string): void;
  onEdit(path: string, content: string): void;
  onSave(path: string): void;
  onRun(): void;
  onCursor(pos: CursorPosition): void;
  onReloadTheirs(path: string): void;
  onOverwrite(path: string): void;
  onDismissNotice(path: string): void;
}

function noticeText(n: DiskNotice, path: string): string {
  switch (n.kind) {
    case "conflict":
      return `${path} was changed elsewhere (now version ${n.version}) since you opened it, so your save was not applied.`;
    case "changed":
      return `${path} changed on disk (version ${n.version}) while you have unsaved edits.`;
    case "deleted":
      return `${path} was deleted on disk. Save to create it again, or close the tab.`;
  }
}

function NoticeBar({ tab, props }: { tab: EditorTab; props: EditorAreaProps }) {
  const n = tab.notice;
  if (!n) return null;
  return (
    <div className={`editor-notice ${n.kind === "deleted" ? "" : "is-warning"}`} role="alert">
      <span className="editor-notice-text">{noticeText(n, tab.path)}</span>
      {n.kind !== "deleted" && (
        <>
          <button className="btn btn-sm" onClick={() => props.onReloadTheirs(tab.path)} title="Discard your edits and load the version on disk">
            Reload theirs
          </button>
          <button className="btn btn-sm btn-primary" onClick={() => props.onOverwrite(tab.path)} title="Replace the version on disk with yours">
            Overwrite with mine
          </button>
        </>
      )}
      <button className="icon-btn" aria-label="Dismiss notice" onClick={() => props.onDismissNotice(tab.path)}>
        <CloseIcon />
      </button>
    </div>
  );
}

export function EditorArea(props: EditorAreaProps) {
  const { tabs } = props;
  const active = tabs.tabs.find((t) => t.path === tabs.active) ?? null;

  const onTabKeyDown = (e: KeyboardEvent, index: number) => {
    let next: number | null = null;
    if (e.key === "ArrowRight") next = (index + 1) % tabs.tabs.length;
    if (e.key === "ArrowLeft") next = (index - 1 + tabs.tabs.length) % tabs.tabs.length;
    if (next !== null) {
      e.preventDefault();
      const path = tabs.tabs[next]!.path;
      props.onActivate(path);
      requestAnimationFrame(() => document.getElementById(`tab-${CSS.escape(path)}`)?.focus());
    }
    if (e.key === "Delete" || ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "w")) {
      e.preventDefault();
      props.onClose(tabs.tabs[index]!.path);
    }
  };

  return (
    <section className="editor-area" aria-label="Editor">
      {tabs.tabs.length > 0 && (
        <div className="editor-tabs" role="tablist" aria-label="Open files">
          {tabs.tabs.map((t, i) => {
            const dirty = isDirty(t);
            const selected = t.path === tabs.active;
            const ic = fileIcon(t.path);
            return (
              <div key={t.path} className={`editor-tab ${selected ? "is-active" : ""} ${dirty ? "is-dirty" : ""}`} title={t.path}>
                <button
                  id={`tab-${t.path}`}
                  role="tab"
                  aria-selected={selected}
                  tabIndex={selected ? 0 : -1}
                  className="editor-tab-label"
                  onClick={() => props.onActivate(t.path)}
                  onKeyDown={(e) => onTabKeyDown(e, i)}
                  onAuxClick={(e) => e.button === 1 && props.onClose(t.path)}
                >
                  <span className="file-icon" style={{ color: ic.color }} aria-hidden>
                    {ic.label}
                  </span>
                  {baseName(t.path)}
                  {dirty && <span className="sr-only"> (unsaved)</span>}
                  {t.saving && <Spinner small label="Saving" />}
                </button>
                <button className="editor-tab-close" aria-label={`Close ${baseName(t.path)}`} tabIndex={-1} onClick={() => props.onClose(t.path)}>
                  <span className="dirty-dot" aria-hidden />
                  <CloseIcon />
                </button>
              </div>
            );
          })}
        </div>
      )}
      {active && <NoticeBar tab={active} props={props} />}
      <div className="editor-body">
        {!active && (
          <div className="editor-empty">
            <div className="editor-empty-title">No file is open</div>
            <div>Pick a file in the explorer, or create one.</div>
            <dl className="shortcuts">
              <dt>Save</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>S</kbd></dd>
              <dt>Run the open file</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>Enter</kbd></dd>
              <dt>Rename / delete in the tree</dt>
              <dd><kbd>F2</kbd> / <kbd>Del</kbd></dd>
              <dt>Copy / paste in a terminal</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>C</kbd> / <kbd>V</kbd></dd>
            </dl>
          </div>
        )}
        {active?.status === "loading" && (
          <div className="editor-empty">
            <Spinner label={`Loading ${active.path}`} />
          </div>
        )}
        {active?.status === "error" && (
          <div className="editor-empty" role="alert">
            <div className="editor-empty-title">Cannot open {baseName(active.path)}</div>
            <div>{active.error}</div>
          </div>
        )}
        {active?.status === "ready" && (
          <Suspense
            fallback={
              <div className="editor-empty">
                <Spinner label="Loading the editor" />
              </div>
            }
          >
            <CodeEditor
              path={active.path}
              language={active.language}
              value={active.content}
              theme={props.theme}
              openPaths={tabs.tabs.map((t) => t.path)}
              onChange={(v) => props.onEdit(active.path, v)}
              onSave={() => props.onSave(active.path)}
              onRun={props.onRun}
              onCursor={props.onCursor}
            />
          </Suspense>
        )}
      </div>
    </section>
  );
}
