/** Running the open file: through the run endpoint with streamed output, or typed into a terminal when the backend has none. */
import { useCallback, useEffect, useRef, useState } from "react";
import { errorMessage } from "../../api/errors";
import { executionEventsUrl, sendRunInput, startRun, stopRun } from "../../api/executions";
import { runCommandForPath } from "../editor/language";
import { describeResult, isSuccess, parseRunEvent, shouldFallbackToTerminal } from "./runEvents";

/** One piece of the Output panel: the build's output, the program's, typed input, a figure, or a line of ours. */
export interface OutputLine {
  kind: "compile" | "stdout" | "stderr" | "stdin" | "figure" | "info" | "error" | "result";
  /** Text, or for a figure the base64 image. */
  text: string;
  ok?: boolean;
  /** A figure's type, and the workspace file it came from (if any). */
  mime?: "image/png" | "image/svg+xml";
  path?: string | null;
}

export type RunStatus = "idle" | "starting" | "running";

export interface Runner {
  status: RunStatus;
  output: OutputLine[];
  /** True once the backend answered that it has no run endpoint: runs go to the terminal. */
  usesTerminal: boolean;
  /** Whether the running program's stdin is still open. */
  inputOpen: boolean;
  /** A workspace file the next runs read as stdin ("" = typed input). */
  stdinPath: string;
  setStdinPath(path: string): void;
  run(path: string, opts?: { stdinPath?: string }): Promise<"output" | "terminal" | "failed">;
  /** Stop: the server kills the program's whole process group; the result line says so. */
  stop(): void;
  /** Type a line (or text) into the running program; `eof` closes its stdin. */
  send(text: string, eof?: boolean): Promise<void>;
  clear(): void;
}

const MAX_LINES = 5000;

export function useRun(sessionUuid: string, typeInTerminal: (command: string) => boolean): Runner {
  const [status, setStatus] = useState<RunStatus>("idle");
  const [output, setOutput] = useState<OutputLine[]>([]);
  const [usesTerminal, setUsesTerminal] = useState(false);
  const [inputOpen, setInputOpen] = useState(false);
  const [stdinPath, setStdinPath] = useState("");
  const source = useRef<EventSource | null>(null);

  const append = useCallback((line: OutputLine) => setOutput((o) => (o.length >= MAX_LINES ? [...o.slice(-MAX_LINES + 1), line] : [...o, line])), []);

  const detach = useCallback(() => {
    source.current?.close();
    source.current = null;
    setStatus("idle");
    setInputOpen(false);
  }, []);

  const stop = useCallback(() => {
    if (!source.current) return;
    append({ kind: "info", text: "Stopping…" });
    stopRun(sessionUuid).catch((err: unknown) => {
      // No run on the server (it just ended): stop following.
      append({ kind: "error", text: errorMessage(err) });
      detach();
    });
  }, [sessionUuid, append, detach]);

  const send = useCallback(
    async (text: string, eof = false) => {
      if (text) append({ kind: "stdin", text });
      try {
        await sendRunInput(sessionUuid, text, eof);
        if (eof) setInputOpen(false);
      } catch (err) {
        append({ kind: "error", text: errorMessage(err) });
      }
    },
    [sessionUuid, append],
  );

  useEffect(() => () => source.current?.close(), []);

  const viaTerminal = useCallback(
    (path: string) => {
      const cmd = runCommandForPath(path);
      if (!cmd) {
        append({ kind: "error", text: `Don't know how to run ${path}.` });
        return "failed" as const;
      }
      return typeInTerminal(`${cmd}\r`) ? ("terminal" as const) : ("failed" as const);
    },
    [append, typeInTerminal],
  );

  const run = useCallback(
    async (path: string, given?: { stdinPath?: string }) => {
      if (usesTerminal) return viaTerminal(path);
      const opts = given ?? (stdinPath.trim() ? { stdinPath: stdinPath.trim().replace(/^\/+/, "") } : undefined);
      detach();
      setStatus("starting");
      setOutput([{ kind: "info", text: `▶ Running ${path}${opts?.stdinPath ? ` < ${opts.stdinPath}` : ""}` }]);
      let executionId: string;
      try {
        executionId = (await startRun(sessionUuid, path, undefined, opts?.stdinPath)).execution_id;
      } catch (err) {
        setStatus("idle");
        if (shouldFallbackToTerminal(err)) {
          setUsesTerminal(true);
          setOutput([]);
          return viaTerminal(path);
        }
        append({ kind: "error", text: errorMessage(err) });
        return "failed";
      }
      setStatus("running");
      setInputOpen(!opts?.stdinPath);
      let compiled = false;
      const es = new EventSource(executionEventsUrl(executionId), { withCredentials: true });
      source.current = es;
      const onEvent = (name: string) => (e: MessageEvent<string>) => {
        const ev = parseRunEvent(name, e.data);
        if (!ev) return;
        if (ev.kind === "figure") append({ kind: "figure", text: ev.data, mime: ev.mime, path: ev.path });
        else if (ev.kind === "result") {
          // The build's output streamed as `compile` events; the result repeats it only for followers that missed them.
          if (ev.compileOutput && !compiled && !isSuccess(ev)) append({ kind: "compile", text: ev.compileOutput });
          append({ kind: "result", text: describeResult(ev), ok: isSuccess(ev) });
          es.close();
          if (source.current === es) source.current = null;
          setStatus("idle");
          setInputOpen(false);
        } else {
          if (ev.kind === "compile") compiled = true;
          append({ kind: ev.kind, text: ev.text });
        }
      };
      for (const name of ["compile", "stdout", "stderr", "figure", "result"]) es.addEventListener(name, onEvent(name) as EventListener);
      es.onerror = () => {
        // EventSource would reconnect and replay; a run's stream is over once it drops.
        if (source.current !== es) return;
        detach();
        append({ kind: "error", text: "The output stream ended before the run finished." });
      };
      return "output";
    },
    [sessionUuid, usesTerminal, viaTerminal, detach, append, stdinPath],
  );

  return { status, output, usesTerminal, inputOpen, stdinPath, setStdinPath, run, stop, send, clear: () => setOutput([]) };
}
