/** Runs of the open file: the run endpoint's server-sent events, and when to fall back to the terminal. */
import { ApiError } from "../../api/errors";
import type { components } from "../../api/ws.gen";

/** The data of each server-sent event by name, generated from src/coolcoding/schemas/ws.py. */
type RunEventsData = components["schemas"]["RunEvents"];
type RunResultData = RunEventsData["result"];

export type RunEvent =
  | { kind: "stdout" | "stderr" | "compile"; text: string }
  | { kind: "figure"; mime: "image/png" | "image/svg+xml"; data: string; path: string | null }
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

function output(kind: "stdout" | "stderr" | "compile", o: Record<string, unknown>): RunEvent | null {
  const text = o["data" satisfies keyof RunEventsData["stdout"]];
  return typeof text === "string" ? { kind, text } : null;
}

function result(o: Record<string, unknown>): RunEvent {
  const num = (k: keyof RunResultData) => (typeof o[k] === "number" ? (o[k] as number) : null);
  const str = (k: keyof RunResultData) => (typeof o[k] === "string" ? (o[k] as string) : null);
  return {
    kind: "result",
    exitCode: num("exit_code"),
    durationMs: num("duration_ms"),
    status: str("status"),
    message: str("message"),
    signal: str("signal_name"),
    compileOutput: str("compile_output") || null,
  };
}

/** One decoder per event name: an event added to the schema fails typecheck until it is decoded here. */
const DECODERS: { [K in keyof RunEventsData]: (o: Record<string, unknown>) => RunEvent | null } = {
  compile: (o) => output("compile", o),
  stdout: (o) => output("stdout", o),
  stderr: (o) => output("stderr", o),
  figure: (o) => {
    const mime = o["mime"];
    if ((mime !== "image/png" && mime !== "image/svg+xml") || typeof o["data"] !== "string" || !/^[A-Za-z0-9+/=]*$/.test(o["data"])) return null;
    return { kind: "figure", mime, data: o["data"], path: typeof o["path"] === "string" ? o["path"] : null };
  },
  result,
};

/** Decodes one SSE event (`compile`, `stdout`, `stderr`, `figure`, `result`, whose data is a JSON object); null for anything else. */
export function parseRunEvent(name: string, data: string): RunEvent | null {
  if (!Object.hasOwn(DECODERS, name)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  const o = asRecord(parsed);
  return o ? DECODERS[name as keyof RunEventsData](o) : null;
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
  if (r.message?.endsWith("(Stop)")) return `Stopped: the program and everything it started were killed${r.durationMs !== null ? ` after ${r.durationMs < 1000 ? `${r.durationMs} ms` : `${(r.durationMs / 1000).toFixed(2)} s`}` : ""}`;
  const parts: string[] = [];
  if (r.status && !SUCCESS.has(r.status)) parts.push(r.status.replace(/_/g, " "));
  if (r.exitCode !== null) parts.push(`exit code ${r.exitCode}`);
  if (r.signal) parts.push(`killed by ${r.signal}`);
  if (r.durationMs !== null) parts.push(r.durationMs < 1000 ? `${r.durationMs} ms` : `${(r.durationMs / 1000).toFixed(2)} s`);
  if (r.message) parts.push(r.message);
  return parts.length ? `Finished: ${parts.join(", ")}` : "Finished";
}
