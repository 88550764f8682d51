/** The workspace's flat item list: loaded from the API, kept live by events, changed by file operations. */
import { useCallback, useEffect, useRef, useState } from "react";
import * as ws from "../../api/workspace";
import { errorMessage } from "../../api/errors";
import type { FileItem } from "../../api/types";
import { applyWorkspaceEvent, type WorkspaceEvent } from "./workspaceEvents";
import { movePathInList, removePath, upsertItem } from "./tree";

export type FilesState = { status: "loading" } | { status: "error"; message: string } | { status: "ready" };

export interface WorkspaceFiles {
  state: FilesState;
  items: readonly FileItem[];
  refresh(): Promise<void>;
  applyEvent(ev: WorkspaceEvent): void;
  createFile(path: string): Promise<FileItem>;
  createFolder(path: string): Promise<FileItem>;
  move(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
}

export function useWorkspaceFiles(uuid: string): WorkspaceFiles {
  const [state, setState] = useState<FilesState>({ status: "loading" });
  const [items, setItems] = useState<readonly FileItem[]>([]);
  const generation = useRef(0);

  const refresh = useCallback(async () => {
    const gen = ++generation.current;
    try {
      const list = await ws.listFiles(uuid);
      if (gen !== generation.current) return;
      setItems(list);
      setState({ status: "ready" });
    } catch (err) {
      if (gen !== generation.current) return;
      setState((s) => (s.status === "ready" ? s : { status: "error", message: errorMessage(err) }));
      throw err;
    }
  }, [uuid]);

  useEffect(() => {
    setState({ status: "loading" });
    setItems([]);
    // A new workspace gets its default main.py first (no-op when files exist).
    ws.ensureDefault(uuid)
      .catch(() => undefined)
      .then(() => refresh())
      .catch(() => undefined);
  }, [uuid, refresh]);

  const applyEvent = useCallback((ev: WorkspaceEvent) => setItems((list) => applyWorkspaceEvent(list, ev)), []);

  const createFile = useCallback(
    async (path: string) => {
      const item = await ws.writeFile(uuid, path, "", 0);
      setItems((list) => upsertItem(list, item));
      return item;
    },
    [uuid],
  );
  const createFolder = useCallback(
    async (path: string) => {
      const item = await ws.createFolder(uuid, path);
      setItems((list) => upsertItem(list, item));
      return item;
    },
    [uuid],
  );
  const move = useCallback(
    async (from: string, to: string) => {
      await ws.movePath(uuid, from, to);
      setItems((list) => movePathInList(list, from, to));
    },
    [uuid],
  );
  const remove = useCallback(
    async (path: string) => {
      await ws.deletePath(uuid, path);
      setItems((list) => removePath(list, path));
    },
    [uuid],
  );

  return { state, items, refresh, applyEvent, createFile, createFolder, move, remove };
}
