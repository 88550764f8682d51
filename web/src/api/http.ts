/** The one fetch wrapper: same-origin cookies, JSON bodies, and ApiError for every failure. */
import { ApiError, errorFromResponse } from "./errors";

export type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";

export interface RequestOptions {
  method?: Method;
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
}

type FetchLike = (input: string, init: RequestInit) => Promise<Response>;
type UnauthorizedListener = () => void;

let fetchImpl: FetchLike = (input, init) => fetch(input, init);
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Replaces fetch (tests). */
export function setFetch(f: FetchLike): void {
  fetchImpl = f;
}

/** Called whenever the server answers 401 (the session cookie expired or was revoked). */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

/** Encodes a workspace path for a URL while keeping its '/' separators. */
export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

export function buildUrl(path: string, query?: RequestOptions["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined) params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** Sends a request and returns the parsed JSON body (undefined for 204). Throws ApiError. */
export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const init: RequestInit = { method: opts.method ?? "GET", credentials: "same-origin", headers };
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(opts.body);
  }
  if (opts.signal) init.signal = opts.signal;

  let res: Response;
  try {
    res = await fetchImpl(buildUrl(path, opts.query), init);
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network_error", "Cannot reach the server. Check your connection and try again.");
  }

  const text = res.status === 204 ? "" : await res.text();
  if (!res.ok) {
    const error = errorFromResponse(res.status, text);
    if (res.status === 401) unauthorizedListeners.forEach((l) => l());
    throw error;
  }
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, "bad_response", "The server sent a response that is not JSON.");
  }
}

/** The ws:// or wss:// URL of an API path on this origin. */
export function wsUrl(path: string, query?: RequestOptions["query"], loc: Pick<Location, "protocol" | "host"> = window.location): string {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}${buildUrl(path, query)}`;
}
