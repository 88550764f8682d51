/** Session (workspace) endpoints (`/api/sessions/...`) and the language list. */
import { request } from "./http";
import type { Language, SandboxState, Session, SessionCreate, SessionUpdate, TerminalCommand, TerminalInfo } from "./types";

export function listSessions(): Promise<Session[]> {
  return request<Session[]>("/api/sessions/");
}

export function createSession(body: SessionCreate): Promise<Session> {
  return request<Session>("/api/sessions/", { method: "POST", body });
}

export function getSession(uuid: string): Promise<Session> {
  return request<Session>(`/api/sessions/${encodeURIComponent(uuid)}`);
}

export function updateSession(uuid: string, body: SessionUpdate): Promise<Session> {
  return request<Session>(`/api/sessions/${encodeURIComponent(uuid)}`, { method: "PATCH", body });
}

export function deleteSession(uuid: string): Promise<void> {
  return request<void>(`/api/sessions/${encodeURIComponent(uuid)}`, { method: "DELETE" });
}

export function startSandbox(uuid: string): Promise<SandboxState> {
  return request<SandboxState>(`/api/sessions/${encodeURIComponent(uuid)}/sandbox/start`, { method: "POST" });
}

export function stopSandbox(uuid: string): Promise<SandboxState> {
  return request<SandboxState>(`/api/sessions/${encodeURIComponent(uuid)}/sandbox/stop`, { method: "POST" });
}

export function listTerminals(uuid: string): Promise<TerminalInfo[]> {
  return request<TerminalInfo[]>(`/api/sessions/${encodeURIComponent(uuid)}/terminals`);
}

export function closeTerminal(uuid: string, terminalId: string): Promise<void> {
  return request<void>(`/api/sessions/${encodeURIComponent(uuid)}/terminals/${encodeURIComponent(terminalId)}`, { method: "DELETE" });
}

/** The session's latest terminal commands, newest first. */
export function listCommands(uuid: string, limit = 100): Promise<TerminalCommand[]> {
  return request<TerminalCommand[]>(`/api/sessions/${encodeURIComponent(uuid)}/commands?limit=${limit}`);
}

export function listLanguages(): Promise<Language[]> {
  return request<Language[]>("/api/languages");
}
