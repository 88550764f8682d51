/**
 * Monaco from the bundle, never from a CDN: @monaco-editor/react is pointed at the imported module and
 * Monaco's web workers are Vite worker chunks. Imported only by the lazily loaded editor component.
 */
import { loader } from "@monaco-editor/react";
import * as monaco from "monaco-editor";
import EditorWorker from "monaco-editor/editor/editor.worker?worker";
import JsonWorker from "monaco-editor/language/json/json.worker?worker";
import CssWorker from "monaco-editor/language/css/css.worker?worker";
import HtmlWorker from "monaco-editor/language/html/html.worker?worker";
import TsWorker from "monaco-editor/language/typescript/ts.worker?worker";

self.MonacoEnvironment = {
  getWorker(_workerId: string, label: string): Worker {
    switch (label) {
      case "json":
        return new JsonWorker();
      case "css":
      case "scss":
      case "less":
        return new CssWorker();
      case "html":
      case "handlebars":
      case "razor":
        return new HtmlWorker();
      case "typescript":
      case "javascript":
        return new TsWorker();
      default:
        return new EditorWorker();
    }
  },
};

loader.config({ monaco });

// Editor themes that match the app's own dark and light palettes (styles/global.css).
monaco.editor.defineTheme("cc-dark", {
  base: "vs-dark",
  inherit: true,
  rules: [],
  colors: {
    "editor.background": "#161922",
    "editorGutter.background": "#161922",
    "minimap.background": "#161922",
    "editor.lineHighlightBackground": "#1e2230",
    "editor.lineHighlightBorder": "#00000000",
    "editorLineNumber.foreground": "#4b5263",
    "editorLineNumber.activeForeground": "#9aa3b5",
    "editorWidget.background": "#1a1d27",
    "editorWidget.border": "#2a2f3d",
    "editor.selectionBackground": "#2f4a7a",
    "scrollbarSlider.background": "#3a405266",
  },
});
monaco.editor.defineTheme("cc-light", {
  base: "vs",
  inherit: true,
  rules: [],
  colors: {
    "editor.background": "#ffffff",
    "editor.lineHighlightBackground": "#f3f5f9",
    "editor.lineHighlightBorder": "#00000000",
    "editorLineNumber.foreground": "#a0a7b4",
    "editorLineNumber.activeForeground": "#596275",
  },
});

export { monaco };
