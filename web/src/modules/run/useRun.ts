/** Running the open file: through the run endpoint with streamed output, or typed into a terminal when the backend has none. */
import { useCallback, useEffect, useRef, useState } from "react";
import { errorMessage } from "../../api/errors";
import { executionEventsUrl, startRun } from "../../api/executions";
import { runCommandForPath } from "../editor/language";
import { describeResult, isSuccess, parseRunEvent, shouldFallbackToTerminal } from "./runEvents";

export interface OutputLine {
  kind: "stdout" | "stderr" | "info" | "error";
  text: string;
}

export type RunStatus = "idle" | "starting" | "running";

export interface Runner {
  status: RunStatus;
  output: OutputLine[];
  /** True once the backend answered that it has no run endpoint: runs go to the terminal. */
  usesTerminal: boolean;
  run(path: string): Promise<"output" | "terminal" | "failed">;
  stop(): void;
  clear(): void;
}

const MAX_LINES = 5000;

export function useRun(sessionUuid: string, typeInTerminal: (command: string) => boolean): Runner {
  const [status, setStatus] = useState<RunStatus>("idle");
  const [output, setOutput] = useState<OutputLine[]>([]);
  const [usesTerminal, setUsesTerminal] = useState(false);
  const source = useRef<EventSource | null>(null);

  const append = useCallback((line: OutputLine) => setOutput((o) => (o.length >= MAX_LINES ? [...o.slice(-MAX_LINES + 1), line] : [...o, line])), []);

  const stop = useCallback(() => {
    source.current?.close();
    source.current = null;
    setStatus("idle");
  }, []);

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
    async (path: string) => {
      if (usesTerminal) return viaTerminal(path);
      stop();
      setStatus("starting");
      setOutput([{ kind: "info", text: `▶ Running ${path}` }]);
      let executionId: string;
      try {
        executionId = (await startRun(sessionUuid, path)).execution_id;
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
      const es = new EventSource(executionEventsUrl(executionId), { withCredentials: true });
      source.current = es;
      const onStream = (name: "stdout" | "stderr") => (e: MessageEvent<string>) => {
        const ev = parseRunEvent(name, e.data);
        if (ev && ev.kind !== "result") append({ kind: ev.kind, text: ev.text });
      };
      es.addEventListener("stdout", onStream("stdout"));
      es.addEventListener("stderr", onStream("stderr"));
      es.addEventListener("result", (e) => {
        const ev = parseRunEvent("result", (e as MessageEvent<string>).data);
        if (ev && ev.kind === "result") {
          if (ev.compileOutput && !isSuccess(ev)) append({ kind: "stderr", text: ev.compileOutput.endsWith("\n") ? ev.compileOutput : `${ev.compileOutput}\n` });
          append({ kind: isSuccess(ev) ? "info" : "error", text: describeResult(ev) });
        }
        es.close();
        if (source.current === es) source.current = null;
        setStatus("idle");
      });
      es.onerror = () => {
        // EventSource would reconnect and replay; a run's stream is over once it drops.
        if (source.current !== es) return;
        es.close();
        source.current = null;
        setStatus("idle");
        append({ kind: "error", text: "The output stream ended before the run finished." });
      };
      return "output";
    },
    [sessionUuid, usesTerminal, viaTerminal, stop, append],
  );

  return { status, output, usesTerminal, run, stop, clear: () => setOutput([]) };
}
