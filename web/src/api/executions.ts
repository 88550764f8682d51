/** Runs of a session's file: start one, then follow its server-sent events. */
import { request } from "./http";
import type { RunRequest, RunStarted } from "./types";

export function startRun(uuid: string, path: string, stdin?: string, stdinPath?: string): Promise<RunStarted> {
  const body: RunRequest = { path };
  if (stdin !== undefined) body.stdin = stdin;
  if (stdinPath) body.stdin_path = stdinPath;
  return request<RunStarted>(`/api/sessions/${encodeURIComponent(uuid)}/run`, { method: "POST", body });
}

export function executionEventsUrl(executionId: string): string {
  return `/api/executions/${encodeURIComponent(executionId)}/events`;
}

/** Input for the session's running program; `eof` then closes its stdin. */
export function sendRunInput(uuid: string, data: string, eof = false): Promise<{ execution_id: string }> {
  return request(`/api/sessions/${encodeURIComponent(uuid)}/run/stdin`, { method: "POST", body: { data, eof } });
}

/** Stop the session's run: the server kills its whole process group. */
export function stopRun(uuid: string): Promise<{ execution_id: string }> {
  return request(`/api/sessions/${encodeURIComponent(uuid)}/run/stop`, { method: "POST" });
}
