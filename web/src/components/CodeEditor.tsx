/** The Monaco editor for one open file (one model per path, so undo history and view state stay per tab). */
import Editor, { type OnMount } from "@monaco-editor/react";
import { useEffect, useRef } from "react";
import { monaco } from "../modules/editor/monacoSetup";
import { Spinner } from "./PageStates";

export interface CursorPosition {
  line: number;
  column: number;
}

interface CodeEditorProps {
  path: string;
  language: string;
  value: string;
  theme: "dark" | "light";
  readOnly?: boolean;
  /** Every open tab's path: models of other paths (closed tabs) are disposed. */
  openPaths: readonly string[];
  onChange(value: string): void;
  onSave(): void;
  onRun(): void;
  onCursor(pos: CursorPosition): void;
}

export default function CodeEditor(props: CodeEditorProps) {
  // Monaco's command handlers are registered once; they call the latest props through this ref.
  const latest = useRef(props);
  latest.current = props;
  const editorRef = useRef<monaco.editor.IStandaloneCodeEditor | null>(null);

  const onMount: OnMount = (editor) => {
    editorRef.current = editor;
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => latest.current.onSave());
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.Enter, () => latest.current.onRun());
    editor.onDidChangeCursorPosition((e) => latest.current.onCursor({ line: e.position.lineNumber, column: e.position.column }));
    const p = editor.getPosition();
    if (p) latest.current.onCursor({ line: p.lineNumber, column: p.column });
    // Monaco loads lazily: take focus only if the user is still on this file (or nowhere), never
    // away from something they moved to meanwhile.
    const active = document.activeElement as HTMLElement | null;
    if (!active || active === document.body || active.dataset["path"] === latest.current.path) editor.focus();
  };

  useEffect(() => {
    const p = editorRef.current?.getPosition();
    if (p) props.onCursor({ line: p.lineNumber, column: p.column });
  }, [props.path]);

  const openKey = props.openPaths.join("\n");
  useEffect(() => {
    const keep = new Set(openKey.split("\n").map((p) => monaco.Uri.parse(p).toString()));
    for (const model of monaco.editor.getModels()) {
      // "history:" models belong to the history dialog's diff editor (components/DiffView.tsx).
      if (model.uri.scheme !== "history" && !keep.has(model.uri.toString())) model.dispose();
    }
  }, [openKey]);

  return (
    <Editor
      path={props.path}
      language={props.language}
      // Uncontrolled on purpose: while it is mounted, the buffer is Monaco's model and `onChange`
      // reports it. A controlled `value` is written back into the model whenever it differs, and a
      // render can carry a value a few keystrokes old, which dropped what was typed meanwhile. New
      // content from outside (a load, a reload from disk) always passes through the tab's "loading"
      // state, which unmounts this editor and disposes its model, so it starts from `defaultValue`.
      defaultValue={props.value}
      theme={props.theme === "dark" ? "cc-dark" : "cc-light"}
      onChange={(v) => props.onChange(v ?? "")}
      onMount={onMount}
      loading={<Spinner label="Loading editor" />}
      options={{
        readOnly: props.readOnly ?? false,
        fontFamily: "'JetBrains Mono', ui-monospace, monospace",
        fontSize: 13.5,
        fontLigatures: false,
        minimap: { enabled: true, scale: 1, renderCharacters: false },
        scrollBeyondLastLine: false,
        smoothScrolling: true,
        automaticLayout: true,
        tabSize: 4,
        renderWhitespace: "selection",
        bracketPairColorization: { enabled: true },
        padding: { top: 8 },
        ariaLabel: `Editor: ${props.path}`,
      }}
    />
  );
}
