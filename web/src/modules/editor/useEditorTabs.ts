/** The open tabs of a workspace: the pure reducer plus the requests it asks for (loading, saving). */
import { useCallback, useEffect, useReducer, useRef } from "react";
import { ApiError, errorMessage } from "../../api/errors";
import * as ws from "../../api/workspace";
import { baseVersionForSave, isDirty, restoreTabs, tabsReducer, tabsToLoad, type EditorTab, type TabsAction, type TabsState } from "./editorTabs";

export type SaveOutcome = "saved" | "conflict" | "failed" | "skipped";

export interface EditorTabs {
  state: TabsState;
  activeTab: EditorTab | null;
  dispatch(action: TabsAction): void;
  save(path: string, opts?: { overwrite?: boolean; force?: boolean }): Promise<SaveOutcome>;
  saveAllDirty(): Promise<void>;
}

const MAX_TEXT_BYTES = 5 * 1024 * 1024;

const storageKey = (uuid: string) => `cc.tabs.${uuid}`;

function loadSavedTabs(uuid: string): TabsState {
  try {
    const saved: unknown = JSON.parse(sessionStorage.getItem(storageKey(uuid)) ?? "null");
    if (saved && typeof saved === "object" && Array.isArray((saved as { paths?: unknown }).paths)) {
      const { paths, active } = saved as { paths: unknown[]; active?: unknown };
      return restoreTabs(paths.filter((p): p is string => typeof p === "string"), typeof active === "string" ? active : null);
    }
  } catch {
    /* nothing saved, or storage disabled */
  }
  return restoreTabs([], null);
}

export function useEditorTabs(uuid: string, onError: (message: string) => void): EditorTabs {
  const [state, dispatch] = useReducer(tabsReducer, uuid, loadSavedTabs);

  // Open tabs survive a reload of this browser tab.
  const pathsKey = state.tabs.map((t) => t.path).join("\n");
  useEffect(() => {
    try {
      sessionStorage.setItem(storageKey(uuid), JSON.stringify({ paths: pathsKey ? pathsKey.split("\n") : [], active: state.active }));
    } catch {
      /* storage disabled */
    }
  }, [uuid, pathsKey, state.active]);
  const stateRef = useRef(state);
  stateRef.current = state;
  const inFlight = useRef(new Set<string>());

  // Load every tab that asks for it (new tabs, clean tabs changed on disk, "reload theirs").
  useEffect(() => {
    for (const tab of tabsToLoad(state)) {
      if (inFlight.current.has(tab.path)) continue;
      inFlight.current.add(tab.path);
      const path = tab.path;
      ws.readFile(uuid, path)
        .then((f) => {
          if (f.encoding === "base64" || f.is_binary) {
            dispatch({ type: "load_failed", path, error: "This is a binary file; it cannot be edited here." });
          } else if (f.content.length > MAX_TEXT_BYTES) {
            dispatch({ type: "load_failed", path, error: "This file is too large to edit in the browser." });
          } else {
            dispatch({ type: "loaded", path, content: f.content, version: f.version, isBinary: f.is_binary });
          }
        })
        .catch((err: unknown) => {
          // A tab restored after a reload whose file is gone meanwhile just closes.
          if (err instanceof ApiError && err.status === 404) dispatch({ type: "close", path });
          else dispatch({ type: "load_failed", path, error: errorMessage(err) });
        })
        .finally(() => inFlight.current.delete(path));
    }
  }, [state, uuid]);

  const save = useCallback(
    async (path: string, opts: { overwrite?: boolean; force?: boolean } = {}): Promise<SaveOutcome> => {
      const tab = stateRef.current.tabs.find((t) => t.path === path);
      if (!tab || tab.status !== "ready" || tab.saving) return "skipped";
      if (!isDirty(tab) && !opts.force && !opts.overwrite && tab.notice?.kind !== "deleted") return "skipped";
      const content = tab.content;
      dispatch({ type: "save_started", path });
      try {
        const item = await ws.writeFile(uuid, path, content, baseVersionForSave(tab, opts.overwrite ?? false));
        dispatch({ type: "saved", path, content, version: item.version });
        return "saved";
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && (err.code === "version_conflict" || err.code === "already_exists")) {
          dispatch({ type: "save_conflict", path, currentVersion: err.currentVersion ?? tab.version + 1 });
          return "conflict";
        }
        dispatch({ type: "save_failed", path });
        onError(`Could not save ${path}: ${errorMessage(err)}`);
        return "failed";
      }
    },
    [uuid, onError],
  );

  const saveAllDirty = useCallback(async () => {
    for (const t of stateRef.current.tabs) if (isDirty(t)) await save(t.path);
  }, [save]);

  const activeTab = state.tabs.find((t) => t.path === state.active) ?? null;
  return { state, activeTab, dispatch, save, saveAllDirty };
}
