/** File history, snapshots, the trash and forks (`docs/API.md`, "History"). */
import type { components } from "./schema.gen";
import { encodePath, request } from "./http";
import type { Session } from "./types";

type Schemas = components["schemas"];
export type Version = Schemas["VersionOut"];
export type VersionContent = Schemas["VersionContentOut"];
export type Diff = Schemas["DiffOut"];
export type RestoreResult = Schemas["RestoreVersionOut"];
export type Snapshot = Schemas["SnapshotOut"];
export type SnapshotFile = Schemas["SnapshotFileOut"];

const base = (uuid: string) => `/api/workspace/${encodeURIComponent(uuid)}`;

export async function listVersions(uuid: string, path?: string): Promise<Version[]> {
  const res = await request<Schemas["VersionList"]>(`${base(uuid)}/history`, { query: path ? { path } : {} });
  return res.versions;
}

export function diffVersions(uuid: string, from: number, to?: number): Promise<Diff> {
  return request<Diff>(`${base(uuid)}/history/diff`, { query: to === undefined ? { from } : { from, to } });
}

export function restoreVersion(uuid: string, id: number): Promise<RestoreResult> {
  return request<RestoreResult>(`${base(uuid)}/history/${id}/restore`, { method: "POST", body: {} });
}

export async function listSnapshots(uuid: string, trash = false): Promise<Snapshot[]> {
  const res = await request<Schemas["SnapshotList"]>(`${base(uuid)}/${trash ? "trash" : "snapshots"}`);
  return res.snapshots;
}

export function createSnapshot(uuid: string, name: string): Promise<Snapshot> {
  return request<Snapshot>(`${base(uuid)}/snapshots`, { method: "POST", body: { name } });
}

export async function snapshotFiles(uuid: string, id: number, trash = false): Promise<SnapshotFile[]> {
  const res = await request<Schemas["SnapshotFiles"]>(`${base(uuid)}/${trash ? "trash" : "snapshots"}/${id}/files`);
  return res.items;
}

export function snapshotFile(uuid: string, id: number, path: string): Promise<VersionContent> {
  return request<VersionContent>(`${base(uuid)}/snapshots/${id}/file/${encodePath(path)}`);
}

export function restoreSnapshot(uuid: string, id: number): Promise<Schemas["SnapshotRestoreOut"]> {
  return request(`${base(uuid)}/snapshots/${id}/restore`, { method: "POST" });
}

export function restoreTrash(uuid: string, id: number): Promise<Schemas["TrashRestoreOut"]> {
  return request(`${base(uuid)}/trash/${id}/restore`, { method: "POST" });
}

export async function listDeletedWorkspaces(): Promise<Snapshot[]> {
  const res = await request<Schemas["SnapshotList"]>("/api/trash");
  return res.snapshots;
}

export function restoreWorkspace(id: number): Promise<Session> {
  return request<Session>(`/api/trash/${id}/restore`, { method: "POST" });
}

export function forkSession(uuid: string): Promise<Session> {
  return request<Session>(`/api/sessions/${encodeURIComponent(uuid)}/fork`, { method: "POST", body: {} });
}
