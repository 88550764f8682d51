/** Workspace file endpoints (`/api/workspace/{uuid}/...`). Paths are relative and '/'-separated. */
import { encodePath, request } from "./http";
import type { EnsureDefaultResult, FileContent, FileItem, ItemList, MoveRequest, SaveRequest, WorkspaceStatus } from "./types";

const base = (uuid: string) => `/api/workspace/${encodeURIComponent(uuid)}`;

export async function listFiles(uuid: string): Promise<FileItem[]> {
  const res = await request<ItemList>(`${base(uuid)}/files`);
  return res.items;
}

export function readFile(uuid: string, path: string): Promise<FileContent> {
  return request<FileContent>(`${base(uuid)}/file/${encodePath(path)}`);
}

/** URL of a file's raw bytes (for downloads and images). */
export function rawFileUrl(uuid: string, path: string): string {
  return `${base(uuid)}/file/${encodePath(path)}?raw=1`;
}

/**
 * Writes a file. `baseVersion`: the version the edit started from (a stale one -> 409 version_conflict);
 * 0 = create only; undefined = create or overwrite.
 */
export function writeFile(uuid: string, path: string, content: string, baseVersion?: number): Promise<FileItem> {
  const body: SaveRequest = { content, encoding: "utf-8" };
  if (baseVersion !== undefined) body.base_version = baseVersion;
  return request<FileItem>(`${base(uuid)}/file/${encodePath(path)}`, { method: "POST", body });
}

export function deletePath(uuid: string, path: string): Promise<void> {
  return request<void>(`${base(uuid)}/file/${encodePath(path)}`, { method: "DELETE" });
}

export function createFolder(uuid: string, path: string): Promise<FileItem> {
  return request<FileItem>(`${base(uuid)}/folder/${encodePath(path)}`, { method: "POST" });
}

export function movePath(uuid: string, from: string, to: string): Promise<FileItem> {
  return request<FileItem>(`${base(uuid)}/move`, { method: "POST", body: { from, to } satisfies MoveRequest });
}

export function workspaceStatus(uuid: string): Promise<WorkspaceStatus> {
  return request<WorkspaceStatus>(`${base(uuid)}/status`);
}

export function ensureDefault(uuid: string): Promise<EnsureDefaultResult> {
  return request<EnsureDefaultResult>(`${base(uuid)}/ensure-default`, { method: "POST" });
}
