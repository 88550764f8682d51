/** The Monaco editor for one open file (one model per path, so undo history and view state stay per tab). */
import Editor, { type OnMount } from "@monaco-editor/react";
import { useEffect, useRef, useState } from "react";
import { MonacoBinding } from "y-monaco";
import type { Preferences } from "../api/types";
import type { CollabDoc } from "../modules/collab/collabConnection";
import { cursorCss } from "../modules/collab/cursorStyles";
import { monaco } from "../modules/editor/monacoSetup";
import { Spinner } from "./PageStates";

export interface CursorPosition {
  line: number;
  column: number;
}

/** A request to show a line (search results); a new `nonce` repeats it. */
export interface RevealRequest {
  path: string;
  line: number;
  column: number;
  nonce: number;
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
  prefs?: Preferences;
  reveal?: RevealRequest | null;
  /** Co-editing: the file's shared document (the model is bound to it, with remote cursors). */
  collab?: CollabDoc | null;
}

function revealIn(editor: monaco.editor.IStandaloneCodeEditor, r: RevealRequest) {
  editor.setPosition({ lineNumber: r.line, column: r.column });
  editor.revealLineInCenter(r.line);
  editor.focus();
}

export default function CodeEditor(props: CodeEditorProps) {
  // Monaco's command handlers are registered once; they call the latest props through this ref.
  const latest = useRef(props);
  latest.current = props;
  const editorRef = useRef<monaco.editor.IStandaloneCodeEditor | null>(null);
  const [mounts, setMounts] = useState(0);

  const onMount: OnMount = (editor) => {
    editorRef.current = editor;
    setMounts((n) => n + 1);
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.KeyS, () => latest.current.onSave());
    editor.addCommand(monaco.KeyMod.CtrlCmd | monaco.KeyCode.Enter, () => latest.current.onRun());
    editor.onDidChangeCursorPosition((e) => latest.current.onCursor({ line: e.position.lineNumber, column: e.position.column }));
    const r = latest.current.reveal;
    if (r && r.path === latest.current.path) revealIn(editor, r);
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

  useEffect(() => {
    const r = props.reveal;
    if (r && r.path === props.path && editorRef.current) revealIn(editorRef.current, r);
  }, [props.reveal?.nonce]);

  // Co-editing: bind the model to the shared text (y-monaco keeps both in step and draws the
  // others' selections); the cursor labels' CSS follows the awareness states.
  const collab = props.collab ?? null;
  useEffect(() => {
    const editor = editorRef.current;
    const model = editor?.getModel();
    if (!collab || !editor || !model) return;
    const binding = new MonacoBinding(collab.text, model, new Set([editor]), collab.awareness);
    // y-monaco redraws the others' selections synchronously, on every awareness change and
    // every remote edit; one arriving while Monaco is already applying decorations made it call
    // deltaDecorations recursively (Monaco: "could lead to leaking decorations"). Redraw once,
    // right after the current call stack, instead.
    const redraw = binding._rerenderDecorations;
    let scheduled = false;
    let destroyed = false;
    const redrawSoon = () => {
      if (scheduled) return;
      scheduled = true;
      queueMicrotask(() => {
        scheduled = false;
        if (!destroyed) redraw();
      });
    };
    collab.awareness.off("change", redraw);
    binding._rerenderDecorations = redrawSoon;
    collab.awareness.on("change", redrawSoon);
    const style = document.createElement("style");
    style.dataset["collab"] = collab.path;
    document.head.appendChild(style);
    const restyle = () => {
      style.textContent = cursorCss(collab.awareness.getStates() as Map<number, { user?: { name?: string; color?: string } }>, collab.doc.clientID);
    };
    restyle();
    collab.awareness.on("change", restyle);
    return () => {
      collab.awareness.off("change", restyle);
      style.remove();
      destroyed = true;
      binding.destroy();
    };
  }, [collab, mounts, props.path]);

  // Vim key bindings (monaco-vim, loaded only when chosen), with its mode line under the editor.
  const vimStatus = useRef<HTMLDivElement>(null);
  const vim = props.prefs?.key_bindings === "vim";
  useEffect(() => {
    if (!vim) return;
    let disposed = false;
    let mode: { dispose(): void } | null = null;
    void import("monaco-vim").then(({ initVimMode }) => {
      const editor = editorRef.current;
      if (disposed || !editor || !vimStatus.current) return;
      mode = initVimMode(editor, vimStatus.current);
    });
    return () => {
      disposed = true;
      mode?.dispose();
    };
  }, [vim, props.path, mounts]);

  const openKey = props.openPaths.join("\n");
  useEffect(() => {
    const keep = new Set(openKey.split("\n").map((p) => monaco.Uri.parse(p).toString()));
    for (const model of monaco.editor.getModels()) {
      // "history:" models belong to the history dialog's diff editor (components/DiffView.tsx).
      if (model.uri.scheme !== "history" && !keep.has(model.uri.toString())) model.dispose();
    }
  }, [openKey]);

  const prefs = props.prefs;
  return (
    <div className="code-editor">
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
        fontSize: prefs?.font_size ?? 13.5,
        fontLigatures: false,
        minimap: { enabled: true, scale: 1, renderCharacters: false },
        scrollBeyondLastLine: false,
        smoothScrolling: true,
        automaticLayout: true,
        tabSize: prefs?.tab_size ?? 4,
        wordWrap: prefs?.word_wrap ? "on" : "off",
        renderWhitespace: "selection",
        bracketPairColorization: { enabled: true },
        padding: { top: 8 },
        ariaLabel: `Editor: ${props.path}`,
      }}
    />
    {vim && <div className="vim-status" ref={vimStatus} aria-label="Vim mode" />}
    </div>
  );
}
