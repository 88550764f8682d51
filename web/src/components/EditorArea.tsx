/** The editor column: tabs with dirty markers, the notice about the file on disk, and the (lazily loaded) Monaco editor. */
import { lazy, Suspense, useState, type KeyboardEvent } from "react";
import type { Preferences } from "../api/types";
import type { CollabDoc } from "../modules/collab/collabConnection";
import { isDirty, type DiskNotice, type EditorTab, type TabsState } from "../modules/editor/editorTabs";
import { fileIcon } from "../modules/files/fileIcons";
import { baseName } from "../modules/files/paths";
import { imageType, isMarkdown } from "../modules/preview/preview";
import type { CursorPosition, RevealRequest } from "./CodeEditor";
import { ImagePreview, MarkdownPreview } from "./FilePreview";
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
  uuid: string;
  /** The version of a file in the tree (images re-render when it changes). */
  versionOf(path: string): number;
  prefs?: Preferences;
  reveal?: RevealRequest | null;
  /** Co-editing: the shared document of each file that has one. */
  collabDocs?: ReadonlyMap<string, CollabDoc>;
  /** Files with unsaved edits (single-user, or co-edits the server has not saved yet). */
  unsavedPaths?: ReadonlySet<string>;
  /** A viewer of a shared workspace (or no write access to the shared document): read-only. */
  readOnly?: boolean;
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
  const [mdPreview, setMdPreview] = useState<Set<string>>(new Set());
  const image = active ? imageType(active.path) : null;
  const markdown = active?.status === "ready" && isMarkdown(active.path);
  const showMd = markdown && active !== null && mdPreview.has(active.path);

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
            const dirty = props.unsavedPaths ? props.unsavedPaths.has(t.path) : isDirty(t);
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
      {markdown && active && (
        <div className="editor-toolbar">
          <button
            className={`btn btn-sm ${showMd ? "btn-primary" : ""}`}
            aria-pressed={showMd}
            onClick={() =>
              setMdPreview((s) => {
                const n = new Set(s);
                if (n.has(active.path)) n.delete(active.path);
                else n.add(active.path);
                return n;
              })
            }
          >
            {showMd ? "Hide preview" : "Open preview to the side"}
          </button>
        </div>
      )}
      <div className={`editor-body ${showMd ? "has-side-preview" : ""}`}>
        {active && image && (
          <div className="editor-preview">
            <ImagePreview uuid={props.uuid} path={active.path} version={props.versionOf(active.path)} />
          </div>
        )}
        {!active && (
          <div className="editor-empty">
            <div className="editor-empty-title">No file is open</div>
            <div>Pick a file in the explorer, or create one.</div>
            <dl className="shortcuts">
              <dt>Save</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>S</kbd></dd>
              <dt>Run the open file</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>Enter</kbd></dd>
              <dt>Go to file / all commands</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>P</kbd> / <kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>P</kbd></dd>
              <dt>Search in files</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>F</kbd></dd>
              <dt>Rename / delete in the tree</dt>
              <dd><kbd>F2</kbd> / <kbd>Del</kbd></dd>
              <dt>Copy / paste in a terminal</dt>
              <dd><kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>C</kbd> / <kbd>V</kbd></dd>
            </dl>
          </div>
        )}
        {!image && active?.status === "loading" && (
          <div className="editor-empty">
            <Spinner label={`Loading ${active.path}`} />
          </div>
        )}
        {!image && active?.status === "error" && (
          <div className="editor-empty" role="alert">
            <div className="editor-empty-title">Cannot open {baseName(active.path)}</div>
            <div>{active.error}</div>
          </div>
        )}
        {!image && active?.status === "ready" && (
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
              prefs={props.prefs}
              reveal={props.reveal}
              collab={props.collabDocs?.get(active.path) ?? null}
              readOnly={props.readOnly}
            />
          </Suspense>
        )}
        {showMd && active && <MarkdownPreview source={active.content} />}
      </div>
    </section>
  );
}
