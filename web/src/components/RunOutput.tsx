/** The Output tab: the build's output, the program's output with figures inline, the result line on its own, and an input box for the running program's stdin. */
import { useEffect, useRef, useState } from "react";
import type { OutputLine, Runner } from "../modules/run/useRun";

/** Groups consecutive build output so it shows as one "Build" block apart from the program's output. */
function OutputPiece({ line }: { line: OutputLine }) {
  switch (line.kind) {
    case "figure":
      // A PNG or SVG the server checked; as an <img> from a data URL it can never run script or load anything.
      return (
        <figure className="out-figure-box">
          <img className="out-figure" alt={line.path ? `Image ${line.path} written by the run` : "Figure from the run"} src={`data:${line.mime ?? "image/png"};base64,${line.text}`} />
          {line.path && <figcaption className="muted">{line.path}</figcaption>}
        </figure>
      );
    case "info":
    case "error":
      return <div className={`out-line out-${line.kind}`}>{line.text}</div>;
    case "result":
      return <div className={`out-line out-result ${line.ok ? "out-result-ok" : "out-result-fail"}`} data-testid="run-result">{line.text}</div>;
    default:
      return <span className={`out-${line.kind}`}>{line.text}</span>;
  }
}

interface Block {
  build: boolean;
  lines: OutputLine[];
}

function blocks(output: OutputLine[]): Block[] {
  const out: Block[] = [];
  for (const line of output) {
    const build = line.kind === "compile";
    const last = out[out.length - 1];
    if (last && last.build === build) last.lines.push(line);
    else out.push({ build, lines: [line] });
  }
  return out;
}

export function RunOutput({ runner }: { runner: Runner }) {
  const outputRef = useRef<HTMLDivElement>(null);
  const [input, setInput] = useState("");
  useEffect(() => {
    const el = outputRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [runner.output]);

  const running = runner.status === "running";
  const submit = () => {
    void runner.send(`${input}\n`);
    setInput("");
  };

  return (
    <div className="run-panel">
      <div className="run-output" ref={outputRef} role="log" aria-live="polite" aria-label="Run output">
        {runner.output.length === 0 ? (
          <div className="panel-empty">
            <p>Press Run (Ctrl+Enter) to run the open file. Its output appears here.</p>
          </div>
        ) : (
          blocks(runner.output).map((b, i) =>
            b.build ? (
              <div key={i} className="out-build" aria-label="Build output">
                <div className="out-build-title">Build output</div>
                <pre className="out-compile">{b.lines.map((l) => l.text).join("")}</pre>
              </div>
            ) : (
              <div key={i} className="out-program">
                {b.lines.map((l, j) => (
                  <OutputPiece key={j} line={l} />
                ))}
              </div>
            ),
          )
        )}
      </div>
      {!running && runner.status === "idle" && (
        <div className="run-input">
          <label className="run-stdin-label" htmlFor="run-stdin-path">
            stdin from file
          </label>
          <input
            id="run-stdin-path"
            className="input run-input-box"
            placeholder="none: type input while it runs (e.g. tests/input.txt)"
            value={runner.stdinPath}
            onChange={(e) => runner.setStdinPath(e.target.value)}
          />
        </div>
      )}
      {running && (
        <form
          className="run-input"
          onSubmit={(e) => {
            e.preventDefault();
            submit();
          }}
        >
          <input
            className="input run-input-box"
            aria-label="Program input"
            placeholder={runner.inputOpen ? "Input for the program (Enter sends a line, Ctrl+D ends input)" : "Input is closed"}
            disabled={!runner.inputOpen}
            value={input}
            onChange={(e) => setInput(e.target.value)}
            onKeyDown={(e) => {
              if (e.ctrlKey && (e.key === "d" || e.key === "D")) {
                e.preventDefault();
                void runner.send(input, true);
                setInput("");
              }
            }}
          />
          <button className="btn btn-sm" type="submit" disabled={!runner.inputOpen}>
            Send
          </button>
          <button className="btn btn-sm" type="button" disabled={!runner.inputOpen} title="End of input (Ctrl+D)" onClick={() => { void runner.send(input, true); setInput(""); }}>
            EOF
          </button>
        </form>
      )}
    </div>
  );
}
