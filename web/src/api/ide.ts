/** IDE endpoints: search, uploads/downloads, zip export/import, templates, preferences. */
import { errorFromResponse, ApiError } from "./errors";
import { encodePath, request } from "./http";
import type { ImportResult, Preferences, SearchResult, Session, Template } from "./types";

const base = (uuid: string) => `/api/workspace/${encodeURIComponent(uuid)}`;

export interface SearchOptions {
  regex: boolean;
  caseSensitive: boolean;
  wholeWord: boolean;
  include: string;
  exclude: string;
}

/** One page of results (the server's default size); `after`: the previous page's `next`, with the same query and options. */
export function searchWorkspace(uuid: string, q: string, o: SearchOptions, signal?: AbortSignal, after?: string): Promise<SearchResult> {
  return request<SearchResult>(`${base(uuid)}/search`, {
    query: { q, regex: o.regex, case: o.caseSensitive, word: o.wholeWord, include: o.include || undefined, exclude: o.exclude || undefined, after },
    signal,
  });
}

/** A file as an attachment (served with a Content-Type that cannot run script). */
export function downloadUrl(uuid: string, path: string): string {
  return `${base(uuid)}/download/${encodePath(path)}`;
}

export function exportZipUrl(uuid: string): string {
  return `${base(uuid)}/export.zip`;
}

/** The file's bytes (for previews: made into a blob URL, never inserted as markup). */
export async function fetchBytes(uuid: string, path: string): Promise<Blob> {
  const res = await fetch(downloadUrl(uuid, path), { credentials: "same-origin" });
  if (!res.ok) throw errorFromResponse(res.status, await res.text());
  return res.blob();
}

/** PUT a body with upload progress (fetch has none); resolves with the parsed JSON answer. */
export function sendWithProgress<T>(method: "PUT" | "POST", url: string, body: Blob, onProgress: (loaded: number, total: number) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onerror = () => reject(new ApiError(0, "network_error", "Cannot reach the server. Check your connection and try again."));
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText || "null") as T);
        } catch {
          reject(new ApiError(xhr.status, "bad_response", "The server sent a response that is not JSON."));
        }
      } else reject(errorFromResponse(xhr.status, xhr.responseText));
    };
    xhr.send(body);
  });
}

export function uploadFile<T>(uuid: string, path: string, file: Blob, onProgress: (loaded: number, total: number) => void): Promise<T> {
  return sendWithProgress<T>("PUT", `${base(uuid)}/upload/${encodePath(path)}`, file, onProgress);
}

export function importZip(uuid: string, zip: Blob, onProgress: (loaded: number, total: number) => void): Promise<ImportResult> {
  return sendWithProgress<ImportResult>("POST", `${base(uuid)}/import`, zip, onProgress);
}

export function createSessionFromZip(name: string, zip: Blob, onProgress: (loaded: number, total: number) => void): Promise<Session> {
  return sendWithProgress<Session>("POST", `/api/sessions/import?name=${encodeURIComponent(name)}`, zip, onProgress);
}

export function listTemplates(): Promise<Template[]> {
  return request<Template[]>("/api/templates");
}

export function getPreferences(): Promise<Preferences> {
  return request<Preferences>("/api/users/me/preferences");
}

export function putPreferences(p: Preferences): Promise<Preferences> {
  return request<Preferences>("/api/users/me/preferences", { method: "PUT", body: p });
}
