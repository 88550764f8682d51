/** The workspace events WebSocket's messages (`/api/sessions/{uuid}/events`): parsing and applying them to the item list. */
import type { FileItem, ItemType } from "../../api/types";
import type { components } from "../../api/ws.gen";
import { baseName } from "./paths";
import { movePathInList, removePath, upsertItem } from "./tree";

/** The server's events, generated from src/coolcoding/schemas/ws.py (scripts/gen-ws-types.sh). */
export type WorkspaceEvent = components["schemas"]["WorkspaceServerMessage"];

const str = (v: unknown): v is string => typeof v === "string";
const num = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const itemType = (v: unknown): ItemType => (v === "folder" ? "folder" : "file");
const source = (v: unknown): "api" | "sandbox" => (v === "sandbox" ? "sandbox" : "api");
const SANDBOX_STATUSES = ["stopped", "starting", "running", "error"] as const;
type SandboxStatus = (typeof SANDBOX_STATUSES)[number];
const sandboxStatus = (v: unknown): SandboxStatus | null => (SANDBOX_STATUSES as readonly unknown[]).includes(v) ? (v as SandboxStatus) : null;

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
  const type = o["type"];
  return str(type) && Object.hasOwn(DECODERS, type) ? DECODERS[type as WorkspaceEvent["type"]](o) : null;
}

type Decoders = { [K in WorkspaceEvent["type"]]: (o: Record<string, unknown>) => Extract<WorkspaceEvent, { type: K }> | null };

/** One decoder per event type: an event added to the schema fails typecheck until it is decoded here. */
const DECODERS: Decoders = {
  file_changed: (o) =>
    str(o["path"])
      ? {
          type: "file_changed",
          path: o["path"],
          item_type: itemType(o["item_type"]),
          version: num(o["version"]) ? o["version"] : 0,
          size: num(o["size"]) ? o["size"] : 0,
          source: source(o["source"]),
        }
      : null,
  file_deleted: (o) => (str(o["path"]) ? { type: "file_deleted", path: o["path"], item_type: itemType(o["item_type"]), source: source(o["source"]) } : null),
  file_moved: (o) =>
    str(o["from"]) && str(o["to"]) ? { type: "file_moved", from: o["from"], to: o["to"], item_type: itemType(o["item_type"]), source: source(o["source"]) } : null,
  sandbox_status: (o) => {
    const status = sandboxStatus(o["status"]);
    if (status === null) return null;
    return str(o["message"]) ? { type: "sandbox_status", status, message: o["message"] } : { type: "sandbox_status", status };
  },
  conflict: (o) =>
    str(o["path"]) && str(o["conflict_path"]) ? { type: "conflict", path: o["path"], conflict_path: o["conflict_path"], message: str(o["message"]) ? o["message"] : "" } : null,
  sync_error: (o) => (str(o["path"]) && str(o["error"]) ? { type: "sync_error", path: o["path"], error: o["error"], message: str(o["message"]) ? o["message"] : "" } : null),
  resync: (o) => (o["reason"] === "sync_backlog" ? { type: "resync", reason: "sync_backlog" } : { type: "resync" }),
  pong: () => ({ type: "pong" }),
  run_started: (o) =>
    str(o["execution_id"]) && num(o["user_id"]) && str(o["events"])
      ? { type: "run_started", execution_id: o["execution_id"], user_id: o["user_id"], events: o["events"] }
      : null,
};

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
        size: ev.size ?? 0,
        version: ev.version ?? 0,
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
