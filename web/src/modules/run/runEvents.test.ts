import { describe, expect, it } from "vitest";
import { ApiError } from "../../api/errors";
import { formatBytes, formatRelativeTime } from "../format/relativeTime";
import { describeResult, isSuccess, parseRunEvent, shouldFallbackToTerminal, type RunEvent } from "./runEvents";

describe("run events", () => {
  it("reads stdout/stderr as the schema's {data} objects, and nothing else", () => {
    expect(parseRunEvent("stdout", '{"data":"hi\\n"}')).toEqual({ kind: "stdout", text: "hi\n" });
    expect(parseRunEvent("stderr", '{"data":"oops"}')).toEqual({ kind: "stderr", text: "oops" });
    expect(parseRunEvent("stdout", "plain text")).toBeNull();
    expect(parseRunEvent("other", "x")).toBeNull();
    expect(parseRunEvent("toString", "{}")).toBeNull();
  });
  it("reads build output and figures, refusing a figure that is not base64 PNG", () => {
    expect(parseRunEvent("compile", '{"data":"a.c:1: error"}')).toEqual({ kind: "compile", text: "a.c:1: error" });
    expect(parseRunEvent("figure", '{"mime":"image/png","data":"iVBORw0KGgo="}')).toEqual({ kind: "figure", mime: "image/png", data: "iVBORw0KGgo=", path: null });
    expect(parseRunEvent("figure", '{"mime":"image/svg+xml","data":"PHN2Zz4=","path":"a.svg"}')).toEqual({ kind: "figure", mime: "image/svg+xml", data: "PHN2Zz4=", path: "a.svg" });
    expect(parseRunEvent("figure", '{"mime":"text/html","data":"PHN2Zz4="}')).toBeNull();
    expect(parseRunEvent("figure", '{"mime":"image/png","data":"\"><script>"}')).toBeNull();
  });
  it("reads the result", () => {
    const r = parseRunEvent("result", '{"status":"completed","exit_code":1,"duration_ms":1500}');
    expect(r).toEqual({ kind: "result", exitCode: 1, durationMs: 1500, status: "completed", message: null, signal: null, compileOutput: null });
    expect(describeResult(r as Extract<typeof r, { kind: "result" }>)).toBe("Finished: exit code 1, 1.50 s");
    const t = parseRunEvent("result", '{"status":"time_limit","exit_code":null,"signal_name":"SIGKILL"}') as Extract<RunEvent, { kind: "result" }>;
    expect(describeResult(t)).toBe("Finished: time limit, killed by SIGKILL");
    expect(isSuccess(t)).toBe(false);
    const ok = parseRunEvent("result", '{"status":"accepted","exit_code":0,"duration_ms":12,"compile_output":""}') as Extract<RunEvent, { kind: "result" }>;
    expect(describeResult(ok)).toBe("Finished: exit code 0, 12 ms");
    expect(isSuccess(ok)).toBe(true);
    const ce = parseRunEvent("result", '{"status":"compilation_error","exit_code":null,"compile_output":"a.c:1: error"}') as Extract<RunEvent, { kind: "result" }>;
    expect(ce.compileOutput).toBe("a.c:1: error");
    const stopped = parseRunEvent("result", '{"status":"runtime_error","signal_name":"SIGKILL","duration_ms":2500,"message":"stopped: its process group was killed (Stop)"}') as Extract<RunEvent, { kind: "result" }>;
    expect(describeResult(stopped)).toBe("Stopped: the program and everything it started were killed after 2.50 s");
  });
  it("falls back to the terminal only when the run endpoint does not exist", () => {
    expect(shouldFallbackToTerminal(new ApiError(404, "http_404", "Not Found"))).toBe(true);
    expect(shouldFallbackToTerminal(new ApiError(405, "http_405", "Method Not Allowed"))).toBe(true);
    expect(shouldFallbackToTerminal(new ApiError(501, "not_implemented", "x"))).toBe(true);
    expect(shouldFallbackToTerminal(new ApiError(404, "session_not_found", "x"))).toBe(false);
    expect(shouldFallbackToTerminal(new ApiError(409, "sandbox_error", "x"))).toBe(false);
    expect(shouldFallbackToTerminal(new Error("x"))).toBe(false);
  });
});

describe("formatting", () => {
  const now = Date.parse("2026-11-23T12:00:00Z");
  it("says how long ago", () => {
    expect(formatRelativeTime("2026-11-23T11:59:50Z", now)).toBe("just now");
    expect(formatRelativeTime("2026-11-23T11:55:00Z", now)).toBe("5 minutes ago");
    expect(formatRelativeTime("2026-11-23T09:00:00Z", now)).toBe("3 hours ago");
    expect(formatRelativeTime("2026-11-22T10:00:00Z", now)).toBe("yesterday");
    expect(formatRelativeTime(null, now)).toBe("never");
    expect(formatRelativeTime("garbage", now)).toBe("unknown");
  });
  it("formats sizes", () => {
    expect(formatBytes(10)).toBe("10 B");
    expect(formatBytes(2048)).toBe("2.0 KB");
  });
});
