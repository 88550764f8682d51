/** The workspace events WebSocket's messages (`/api/sessions/{uuid}/events`): parsing and applying them to the item list. */
import type { FileItem, ItemType } from "../../api/types";
import { baseName } from "./paths";
import { movePathInList, removePath, upsertItem } from "./tree";

export type WorkspaceEvent =
  | { type: "file_changed"; path: string; item_type: ItemType; version: number; size: number; source: string }
  | { type: "file_deleted"; path: string; source: string }
  | { type: "file_moved"; from: string; to: string; source: string }
  | { type: "sandbox_status"; status: string; message?: string }
  | { type: "conflict"; path: string; conflict_path: string; message: string }
  | { type: "sync_error"; path: string; error: string; message: string }
  | { type: "resync"; reason?: string };

const str = (v: unknown): v is string => typeof v === "string";
const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** Parses one text frame; null for anything malformed or unknown (ignored, never thrown). */
export function parseWorkspaceEvent(text: string): WorkspaceEvent | null {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof m !== "object" || m === null) return null;
  const o = m as Record<string, unknown>;
  const source = str(o["source"]) ? o["source"] : "api";
  switch (o["type"]) {
    case "file_changed":
      if (!str(o["path"])) return null;
      return {
        type: "file_changed",
        path: o["path"],
        item_type: o["item_type"] === "folder" ? "folder" : "file",
        version: num(o["version"]) ? o["version"] : 0,
        size: num(o["size"]) ? o["size"] : 0,
        source,
      };
    case "file_deleted":
      return str(o["path"]) ? { type: "file_deleted", path: o["path"], source } : null;
    case "file_moved":
      return str(o["from"]) && str(o["to"]) ? { type: "file_moved", from: o["from"], to: o["to"], source } : null;
    case "sandbox_status":
      if (!str(o["status"])) return null;
      return str(o["message"]) ? { type: "sandbox_status", status: o["status"], message: o["message"] } : { type: "sandbox_status", status: o["status"] };
    case "conflict":
      if (!str(o["path"]) || !str(o["conflict_path"])) return null;
      return { type: "conflict", path: o["path"], conflict_path: o["conflict_path"], message: str(o["message"]) ? o["message"] : "" };
    case "sync_error":
      if (!str(o["path"]) || !str(o["error"])) return null;
      return { type: "sync_error", path: o["path"], error: o["error"], message: str(o["message"]) ? o["message"] : "" };
    case "resync":
      return str(o["reason"]) ? { type: "resync", reason: o["reason"] } : { type: "resync" };
    default:
      return null;
  }
}

/** The notice a sandbox sync problem deserves (null: nothing to tell). */
export function syncNotice(ev: WorkspaceEvent): string | null {
  if (ev.type === "sync_error") return ev.message || `${ev.path} was not saved to the workspace (${ev.error}).`;
  if (ev.type === "resync" && ev.reason === "sync_backlog") return "Many files changed in the sandbox at once: the file list was reloaded.";
  return null;
}

/** The item list after an event (unchanged for events that are not about files). */
export function applyWorkspaceEvent(items: readonly FileItem[], ev: WorkspaceEvent, now: () => string = () => new Date().toISOString()): readonly FileItem[] {
  switch (ev.type) {
    case "file_changed": {
      const prev = items.find((i) => i.path === ev.path);
      const item: FileItem = {
        path: ev.path,
        name: baseName(ev.path),
        type: ev.item_type,
        size: ev.size,
        version: ev.version,
        content_hash: null,
        is_binary: prev?.is_binary ?? false,
        updated_at: now(),
      };
      return upsertItem(items, item);
    }
    case "file_deleted":
      return removePath(items, ev.path);
    case "file_moved":
      return movePathInList(items, ev.from, ev.to);
    default:
      return items;
  }
}
