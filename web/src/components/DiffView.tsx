/** Monaco's side-by-side diff editor (read-only): a version on the left, another or the current file on the right. */
import { DiffEditor } from "@monaco-editor/react";
import { monaco } from "../modules/editor/monacoSetup";
import { Spinner } from "./PageStates";

void monaco; // the local Monaco build is configured by importing its setup

export default function DiffView(props: { original: string; modified: string; language: string; theme: "dark" | "light" }) {
  return (
    <div className="history-diff" data-testid="history-diff">
      <DiffEditor
        original={props.original}
        modified={props.modified}
        language={props.language}
        theme={props.theme === "dark" ? "vs-dark" : "vs"}
        loading={<Spinner label="Loading diff" />}
        options={{ readOnly: true, renderSideBySide: true, automaticLayout: true, minimap: { enabled: false } }}
      />
    </div>
  );
}
