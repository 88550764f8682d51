/** Sharing (`/api/sessions/{uuid}/members|links|transfer`, `/api/shared`, `/api/invitations`) and public links (`/api/public/{token}`). */
import { request } from "./http";
import type { components } from "./schema.gen";

export type Member = components["schemas"]["MemberOut"];
export type Members = components["schemas"]["MembersOut"];
export type SharedSession = components["schemas"]["SharedSessionOut"];
export type PublicLink = components["schemas"]["LinkOut"];
export type PublicLinkCreated = components["schemas"]["LinkCreatedOut"];
export type PublicWorkspace = components["schemas"]["PublicWorkspaceOut"];
export type PublicFile = components["schemas"]["PublicFileOut"];
export type PublicRun = components["schemas"]["PublicRunOut"];
export type MemberRole = "viewer" | "editor" | "admin";
export type ForkPolicy = components["schemas"]["ForkPolicyIn"]["fork_policy"];

const s = (uuid: string) => `/api/sessions/${encodeURIComponent(uuid)}`;

export function listMembers(uuid: string): Promise<Members> {
  return request<Members>(`${s(uuid)}/members`);
}

export function inviteMember(uuid: string, user: string, role: MemberRole): Promise<Member> {
  return request<Member>(`${s(uuid)}/members`, { method: "POST", body: { user, role } });
}

export function changeRole(uuid: string, userId: number, role: MemberRole): Promise<Member> {
  return request<Member>(`${s(uuid)}/members/${userId}`, { method: "PUT", body: { role } });
}

export function revokeMember(uuid: string, userId: number): Promise<void> {
  return request<void>(`${s(uuid)}/members/${userId}`, { method: "DELETE" });
}

export function setForkPolicy(uuid: string, forkPolicy: ForkPolicy): Promise<components["schemas"]["ForkPolicyOut"]> {
  return request<components["schemas"]["ForkPolicyOut"]>(`${s(uuid)}/fork-policy`, { method: "PUT", body: { fork_policy: forkPolicy } });
}

export function listLinks(uuid: string): Promise<PublicLink[]> {
  return request<PublicLink[]>(`${s(uuid)}/links`);
}

export function createLink(uuid: string, permission: "read" | "fork", expiresAt: string | null): Promise<PublicLinkCreated> {
  return request<PublicLinkCreated>(`${s(uuid)}/links`, { method: "POST", body: { permission, expires_at: expiresAt } });
}

export function revokeLink(uuid: string, linkId: number): Promise<void> {
  return request<void>(`${s(uuid)}/links/${linkId}`, { method: "DELETE" });
}

export function sharedWithMe(): Promise<SharedSession[]> {
  return request<SharedSession[]>("/api/shared");
}

export function myInvitations(): Promise<SharedSession[]> {
  return request<SharedSession[]>("/api/invitations");
}

export function answerInvitation(uuid: string, accept: boolean): Promise<SharedSession> {
  return request<SharedSession>(`/api/invitations/${encodeURIComponent(uuid)}/${accept ? "accept" : "decline"}`, { method: "POST" });
}

const p = (token: string) => `/api/public/${encodeURIComponent(token)}`;

export function openPublic(token: string): Promise<PublicWorkspace> {
  return request<PublicWorkspace>(p(token));
}

export function publicFile(token: string, path: string): Promise<PublicFile> {
  return request<PublicFile>(`${p(token)}/file/${path.split("/").map(encodeURIComponent).join("/")}`);
}

export function publicRun(token: string): Promise<PublicRun> {
  return request<PublicRun>(`${p(token)}/run`);
}

export function forkFromLink(token: string): Promise<components["schemas"]["SessionOut"]> {
  return request<components["schemas"]["SessionOut"]>(`${p(token)}/fork`, { method: "POST" });
}
