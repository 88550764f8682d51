/** Monaco's side-by-side diff editor (read-only): a version on the left, another or the current file on the right.
 * Made directly (not through the React wrapper, whose unmount disposes the models while the widget still holds them). */
import { useEffect, useRef } from "react";
import { monaco } from "../modules/editor/monacoSetup";

// Models of the diff live under the "history:" scheme, which the file editor leaves alone.
let nextId = 0;

export default function DiffView(props: { original: string; modified: string; language: string; theme: "dark" | "light" }) {
  const host = useRef<HTMLDivElement>(null);
  const { original, modified, language, theme } = props;
  useEffect(() => {
    if (!host.current) return;
    const editor = monaco.editor.createDiffEditor(host.current, {
      readOnly: true,
      originalEditable: false,
      renderSideBySide: true,
      automaticLayout: true,
      minimap: { enabled: false },
      theme: theme === "dark" ? "cc-dark" : "cc-light",
    });
    const id = (nextId += 1);
    const left = monaco.editor.createModel(original, language, monaco.Uri.from({ scheme: "history", path: `/${id}/original` }));
    const right = monaco.editor.createModel(modified, language, monaco.Uri.from({ scheme: "history", path: `/${id}/modified` }));
    editor.setModel({ original: left, modified: right });
    return () => {
      editor.dispose();
      left.dispose();
      right.dispose();
    };
  }, [original, modified, language, theme]);
  return <div className="history-diff" data-testid="history-diff" ref={host} />;
}
