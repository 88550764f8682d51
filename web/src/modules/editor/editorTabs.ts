/**
 * The open editor tabs and the rules for saving, conflicts and changes on disk, as a pure reducer
 * (the workspace page only dispatches actions and performs the requests the state asks for).
 */
import { isSameOrInside, rebasePath } from "../files/paths";
import { languageForPath } from "./language";

export type DiskNotice =
  /** The file changed on disk while the buffer had unsaved edits. */
  | { kind: "changed"; version: number }
  /** The file was deleted on disk. */
  | { kind: "deleted" }
  /** Saving was refused: the file on disk is at `version`, newer than the buffer's base. */
  | { kind: "conflict"; version: number };

export interface EditorTab {
  path: string;
  language: string;
  status: "loading" | "ready" | "error";
  error: string | null;
  /** The buffer (what the editor shows). */
  content: string;
  /** The content at `version`, as last loaded or saved. */
  savedContent: string;
  /** The file version the buffer is based on (sent as base_version when saving). */
  version: number;
  isBinary: boolean;
  saving: boolean;
  /** A newer version reported by an event while a save was in flight; settled when the save answers. */
  pendingVersion: number | null;
  notice: DiskNotice | null;
}

export interface TabsState {
  tabs: EditorTab[];
  active: string | null;
}

export const emptyTabs: TabsState = { tabs: [], active: null };

export type TabsAction =
  | { type: "open"; path: string }
  | { type: "loaded"; path: string; content: string; version: number; isBinary: boolean }
  | { type: "load_failed"; path: string; error: string }
  | { type: "activate"; path: string }
  | { type: "close"; path: string }
  | { type: "edit"; path: string; content: string }
  | { type: "save_started"; path: string }
  | { type: "saved"; path: string; content: string; version: number }
  | { type: "save_conflict"; path: string; currentVersion: number }
  | { type: "save_failed"; path: string }
  | { type: "disk_changed"; path: string; version: number }
  | { type: "disk_deleted"; path: string }
  | { type: "disk_moved"; from: string; to: string }
  | { type: "dismiss_notice"; path: string }
  /** Throw away the buffer and load the file from disk again ("reload theirs"). */
  | { type: "reload"; path: string }
  /** Co-editing: the buffer is the shared document, which the server saves: never dirty. */
  | { type: "collab_synced"; path: string; content?: string; version?: number };

export function isDirty(tab: EditorTab): boolean {
  return tab.status === "ready" && tab.content !== tab.savedContent;
}

function newTab(path: string): EditorTab {
  return {
    path, language: languageForPath(path), status: "loading", error: null, content: "", savedContent: "",
    version: 0, isBinary: false, saving: false, pendingVersion: null, notice: null,
  };
}

function update(state: TabsState, path: string, f: (t: EditorTab) => EditorTab): TabsState {
  let changed = false;
  const tabs = state.tabs.map((t) => {
    if (t.path !== path) return t;
    changed = true;
    return f(t);
  });
  return changed ? { ...state, tabs } : state;
}

/**
 * What to do when the disk reports `version` for an open tab: nothing (we already have it), reload silently
 * (no unsaved edits), or show a notice (unsaved edits would be lost).
 */
export function externalChangeDecision(tab: EditorTab, version: number): "ignore" | "reload" | "notify" {
  if (tab.status !== "ready" || version <= tab.version) return "ignore";
  return isDirty(tab) ? "notify" : "reload";
}

/** Tabs that need their content (re)loaded from the server: new tabs, and clean tabs whose file changed on disk. */
export function tabsToLoad(state: TabsState): EditorTab[] {
  return state.tabs.filter((t) => t.status === "loading");
}

/**
 * The base_version to send when saving a tab. `overwrite`: the user chose to replace the version on disk
 * they were told about. A file deleted on disk is created again (0 = create only).
 */
export function baseVersionForSave(tab: EditorTab, overwrite: boolean): number {
  if (tab.notice?.kind === "deleted") return 0;
  if (overwrite && (tab.notice?.kind === "conflict" || tab.notice?.kind === "changed")) return tab.notice.version;
  return tab.version;
}

/** The tabs to reopen after a reload: saved paths, each loading again from the server. */
export function restoreTabs(paths: readonly string[], active: string | null): TabsState {
  const unique = [...new Set(paths)].filter((p) => typeof p === "string" && p.length > 0);
  let state = emptyTabs;
  for (const p of unique) state = tabsReducer(state, { type: "open", path: p });
  return { ...state, active: active !== null && unique.includes(active) ? active : (unique[0] ?? null) };
}

export function tabsReducer(state: TabsState, action: TabsAction): TabsState {
  switch (action.type) {
    case "open": {
      if (state.tabs.some((t) => t.path === action.path)) return { ...state, active: action.path };
      const idx = state.active ? state.tabs.findIndex((t) => t.path === state.active) : -1;
      const tabs = [...state.tabs];
      tabs.splice(idx + 1, 0, newTab(action.path));
      return { tabs, active: action.path };
    }
    case "loaded":
      return update(state, action.path, (t) => ({
        ...t, status: "ready", error: null, content: action.content, savedContent: action.content,
        version: action.version, isBinary: action.isBinary, notice: null, pendingVersion: null,
      }));
    case "load_failed":
      return update(state, action.path, (t) => ({ ...t, status: "error", error: action.error }));
    case "activate":
      return state.tabs.some((t) => t.path === action.path) ? { ...state, active: action.path } : state;
    case "close": {
      const idx = state.tabs.findIndex((t) => t.path === action.path);
      if (idx < 0) return state;
      const tabs = state.tabs.filter((t) => t.path !== action.path);
      let active = state.active;
      if (active === action.path) active = (tabs[idx] ?? tabs[idx - 1])?.path ?? null;
      return { tabs, active };
    }
    case "edit":
      return update(state, action.path, (t) => (t.status === "ready" ? { ...t, content: action.content } : t));
    case "save_started":
      return update(state, action.path, (t) => ({ ...t, saving: true }));
    case "saved":
      return update(state, action.path, (t) => {
        const saved: EditorTab = { ...t, saving: false, savedContent: action.content, version: action.version, notice: null };
        // An event reported a version newer than the one this save created: someone else wrote after us.
        if (t.pendingVersion !== null && t.pendingVersion > action.version) {
          const pending = t.pendingVersion;
          const afterSave = { ...saved, pendingVersion: null };
          return externalChangeDecision(afterSave, pending) === "reload"
            ? { ...afterSave, status: "loading" }
            : { ...afterSave, notice: { kind: "changed", version: pending } };
        }
        return { ...saved, pendingVersion: null };
      });
    case "save_conflict":
      return update(state, action.path, (t) => ({ ...t, saving: false, pendingVersion: null, notice: { kind: "conflict", version: action.currentVersion } }));
    case "save_failed":
      return update(state, action.path, (t) => ({ ...t, saving: false }));
    case "disk_changed":
      return update(state, action.path, (t) => {
        if (t.saving) return action.version > (t.pendingVersion ?? 0) ? { ...t, pendingVersion: action.version } : t;
        switch (externalChangeDecision(t, action.version)) {
          case "ignore": return t;
          case "reload": return { ...t, status: "loading" };
          case "notify":
            // A conflict notice stays (it already offers reload/overwrite); only its version moves on.
            return t.notice?.kind === "conflict"
              ? { ...t, notice: { kind: "conflict", version: action.version } }
              : { ...t, notice: { kind: "changed", version: action.version } };
        }
      });
    case "disk_deleted": {
      let next = state;
      for (const t of state.tabs) {
        if (isSameOrInside(t.path, action.path)) next = update(next, t.path, (x) => ({ ...x, notice: { kind: "deleted" } }));
      }
      return next;
    }
    case "disk_moved": {
      const tabs = state.tabs.map((t) => {
        const p = rebasePath(t.path, action.from, action.to);
        return p === t.path ? t : { ...t, path: p, language: languageForPath(p) };
      });
      const active = state.active === null ? null : rebasePath(state.active, action.from, action.to);
      return { tabs, active };
    }
    case "dismiss_notice":
      return update(state, action.path, (t) => ({ ...t, notice: null }));
    case "reload":
      return update(state, action.path, (t) => ({ ...t, status: "loading", notice: null }));
    case "collab_synced":
      return update(state, action.path, (t) => {
        if (t.status !== "ready") return t;
        const content = action.content ?? t.content;
        return { ...t, content, savedContent: content, version: Math.max(t.version, action.version ?? 0), notice: null };
      });
  }
}
