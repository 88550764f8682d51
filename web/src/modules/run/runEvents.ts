/** Runs of the open file: the run endpoint's server-sent events, and when to fall back to the terminal. */
import { ApiError } from "../../api/errors";

export type RunEvent =
  | { kind: "stdout" | "stderr"; text: string }
  | {
      kind: "result";
      exitCode: number | null;
      durationMs: number | null;
      /** The verdict (`accepted`, `runtime_error`, `time_limit`, ...). */
      status: string | null;
      message: string | null;
      signal: string | null;
      compileOutput: string | null;
    };

function asRecord(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** Decodes one SSE event (`stdout`, `stderr`, `result`); data may be JSON (`{data|text|chunk}`, or a JSON string) or plain text. */
export function parseRunEvent(name: string, data: string): RunEvent | null {
  let parsed: unknown = data;
  try {
    parsed = JSON.parse(data);
  } catch {
    parsed = data;
  }
  if (name === "stdout" || name === "stderr") {
    if (typeof parsed === "string") return { kind: name, text: parsed };
    const o = asRecord(parsed);
    const text = o ? (o["data"] ?? o["text"] ?? o["chunk"] ?? o["output"]) : null;
    return { kind: name, text: typeof text === "string" ? text : data };
  }
  if (name === "result") {
    const o = asRecord(parsed) ?? {};
    const num = (k: string) => (typeof o[k] === "number" ? (o[k] as number) : null);
    const str = (k: string) => (typeof o[k] === "string" ? (o[k] as string) : null);
    return {
      kind: "result",
      exitCode: num("exit_code") ?? num("returncode") ?? num("code"),
      durationMs: num("duration_ms") ?? (num("wall_time") !== null ? Math.round(num("wall_time")! * 1000) : null),
      status: str("status"),
      message: str("message") ?? str("error"),
      signal: str("signal_name"),
      compileOutput: str("compile_output") || null,
    };
  }
  return null;
}

/** True when starting a run failed because the backend has no run endpoint (so the terminal runs the file instead). */
export function shouldFallbackToTerminal(err: unknown): boolean {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 405 || err.status === 501) return true;
  // A 404 for the route itself carries no domain error code; `session_not_found` is a real answer.
  return err.status === 404 && (err.code === "http_404" || err.code === "not_found");
}

const SUCCESS = new Set(["accepted", "completed", "ok", "finished"]);

/** True for a run that ended normally with exit code 0. */
export function isSuccess(r: Extract<RunEvent, { kind: "result" }>): boolean {
  return (r.status === null || SUCCESS.has(r.status)) && (r.exitCode === null || r.exitCode === 0) && !r.signal;
}

export function describeResult(r: Extract<RunEvent, { kind: "result" }>): string {
  const parts: string[] = [];
  if (r.status && !SUCCESS.has(r.status)) parts.push(r.status.replace(/_/g, " "));
  if (r.exitCode !== null) parts.push(`exit code ${r.exitCode}`);
  if (r.signal) parts.push(`killed by ${r.signal}`);
  if (r.durationMs !== null) parts.push(r.durationMs < 1000 ? `${r.durationMs} ms` : `${(r.durationMs / 1000).toFixed(2)} s`);
  if (r.message) parts.push(r.message);
  return parts.length ? `Finished: ${parts.join(", ")}` : "Finished";
}
