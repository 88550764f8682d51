/** The bottom panel: terminal tabs (each a live shell) and the Output tab of the Run button. */
import { useState } from "react";
import type { Runner } from "../modules/run/useRun";
import type { TerminalTabs } from "../modules/terminal/useTerminalTabs";
import { CloseIcon, PlusIcon, TrashIcon } from "./Icons";
import { PreviewPanel } from "./PreviewPanel";
import { RunOutput } from "./RunOutput";
import { SessionTerminals } from "./SessionTerminals";
import { TerminalView } from "./TerminalView";

export type BottomTab = { kind: "terminal" } | { kind: "output" };

interface TerminalPanelProps {
  sessionUuid: string;
  theme: "dark" | "light";
  terminals: TerminalTabs;
  runner: Runner;
  showOutput: boolean;
  onShowOutput(show: boolean): void;
  /** Whether the session's sandbox runs (the Preview tab says why it lists no ports). */
  sandboxRunning?: boolean;
}

export function TerminalPanel({ sessionUuid, theme, terminals, runner, showOutput, onShowOutput, sandboxRunning = true }: TerminalPanelProps) {
  const [previewTab, setPreviewTab] = useState(false);
  const preview = previewTab && !showOutput;
  const showTab = (output: boolean, previewing = false) => {
    setPreviewTab(previewing);
    onShowOutput(output);
  };
  return (
    <section className="bottom-panel" aria-label="Terminals and output">
      <div className="panel-tabs" role="tablist" aria-label="Terminals">
        {terminals.tabs.map((t) => {
          const selected = !showOutput && !preview && terminals.active === t.id;
          const state = terminals.states[t.id] ?? "connecting";
          return (
            <div key={t.id} className={`panel-tab ${selected ? "is-active" : ""}`}>
              <button
                role="tab"
                aria-selected={selected}
                className="panel-tab-label"
                onClick={() => {
                  terminals.activate(t.id);
                  showTab(false);
                }}
                title={`${t.title} (${state})`}
              >
                <span className={`dot dot-${state === "open" ? "running" : state}`} aria-hidden />
                {t.title}
              </button>
              <button className="panel-tab-close" aria-label={`Close ${t.title}`} title="Close terminal (ends its shell)" onClick={() => terminals.close(t.id)}>
                <CloseIcon />
              </button>
            </div>
          );
        })}
        <button
          className="icon-btn"
          aria-label="New terminal"
          title="New terminal"
          onClick={() => {
            terminals.add();
            showTab(false);
          }}
        >
          <PlusIcon />
        </button>
        <SessionTerminals sessionUuid={sessionUuid} terminals={terminals} />
        <div className="panel-tabs-spacer" />
        <div className={`panel-tab ${showOutput ? "is-active" : ""}`}>
          <button role="tab" aria-selected={showOutput} className="panel-tab-label" onClick={() => showTab(true)}>
            {runner.status !== "idle" && <span className="spinner spinner-sm" aria-hidden />}
            Output
          </button>
        </div>
        <div className={`panel-tab ${preview ? "is-active" : ""}`}>
          <button role="tab" aria-selected={preview} className="panel-tab-label" onClick={() => showTab(false, true)}>
            Preview
          </button>
        </div>
        {showOutput && (
          <button className="icon-btn" aria-label="Clear output" title="Clear output" onClick={runner.clear}>
            <TrashIcon />
          </button>
        )}
      </div>
      <div className="panel-body">
        {terminals.tabs.map((t) => (
          <TerminalView
            key={t.id}
            sessionUuid={sessionUuid}
            terminalId={t.id}
            active={!showOutput && !preview && terminals.active === t.id}
            theme={theme}
            onState={terminals.setState}
            onHandle={terminals.setHandle}
          />
        ))}
        <PreviewPanel sessionUuid={sessionUuid} active={preview} sandboxRunning={sandboxRunning} />
        {!showOutput && !preview && terminals.tabs.length === 0 && (
          <div className="panel-empty">
            <p>No terminal is open.</p>
            <button className="btn btn-sm" onClick={terminals.add}>
              Open a terminal
            </button>
          </div>
        )}
        {showOutput && <RunOutput runner={runner} />}
      </div>
    </section>
  );
}
