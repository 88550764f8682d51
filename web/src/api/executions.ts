/** Runs of a session's file: start one, then follow its server-sent events. */
import { request } from "./http";
import type { RunRequest, RunStarted } from "./types";

export function startRun(uuid: string, path: string, stdin?: string): Promise<RunStarted> {
  const body: RunRequest = { path };
  if (stdin !== undefined) body.stdin = stdin;
  return request<RunStarted>(`/api/sessions/${encodeURIComponent(uuid)}/run`, { method: "POST", body });
}

export function executionEventsUrl(executionId: string): string {
  return `/api/executions/${encodeURIComponent(executionId)}/events`;
}
