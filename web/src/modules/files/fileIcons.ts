/** The icon shown for a file or folder: a short label and a colour, by file name/extension. */

export interface FileIcon {
  label: string;
  color: string;
  title: string;
}

const BY_EXTENSION: Record<string, FileIcon> = {
  py: { label: "py", color: "#3b82f6", title: "Python" },
  js: { label: "js", color: "#eab308", title: "JavaScript" },
  mjs: { label: "js", color: "#eab308", title: "JavaScript" },
  cjs: { label: "js", color: "#eab308", title: "JavaScript" },
  jsx: { label: "jsx", color: "#06b6d4", title: "JavaScript (JSX)" },
  ts: { label: "ts", color: "#2563eb", title: "TypeScript" },
  tsx: { label: "tsx", color: "#0ea5e9", title: "TypeScript (TSX)" },
  json: { label: "{}", color: "#ca8a04", title: "JSON" },
  md: { label: "M↓", color: "#64748b", title: "Markdown" },
  html: { label: "<>", color: "#ea580c", title: "HTML" },
  css: { label: "#", color: "#8b5cf6", title: "CSS" },
  c: { label: "C", color: "#0369a1", title: "C" },
  h: { label: "h", color: "#0369a1", title: "C header" },
  cpp: { label: "C++", color: "#0284c7", title: "C++" },
  cc: { label: "C++", color: "#0284c7", title: "C++" },
  hpp: { label: "h++", color: "#0284c7", title: "C++ header" },
  go: { label: "go", color: "#06b6d4", title: "Go" },
  rs: { label: "rs", color: "#c2410c", title: "Rust" },
  java: { label: "J", color: "#dc2626", title: "Java" },
  rb: { label: "rb", color: "#b91c1c", title: "Ruby" },
  sh: { label: "$", color: "#16a34a", title: "Shell script" },
  bash: { label: "$", color: "#16a34a", title: "Shell script" },
  yml: { label: "yml", color: "#a855f7", title: "YAML" },
  yaml: { label: "yml", color: "#a855f7", title: "YAML" },
  toml: { label: "tml", color: "#9ca3af", title: "TOML" },
  txt: { label: "txt", color: "#9ca3af", title: "Text" },
  csv: { label: "csv", color: "#22c55e", title: "CSV" },
  sql: { label: "sql", color: "#f59e0b", title: "SQL" },
  png: { label: "img", color: "#ec4899", title: "Image" },
  jpg: { label: "img", color: "#ec4899", title: "Image" },
  jpeg: { label: "img", color: "#ec4899", title: "Image" },
  gif: { label: "img", color: "#ec4899", title: "Image" },
  svg: { label: "svg", color: "#f97316", title: "SVG image" },
};

const BY_NAME: Record<string, FileIcon> = {
  dockerfile: { label: "dk", color: "#0ea5e9", title: "Dockerfile" },
  makefile: { label: "mk", color: "#64748b", title: "Makefile" },
  "requirements.txt": { label: "req", color: "#3b82f6", title: "Python requirements" },
  ".gitignore": { label: "git", color: "#f05133", title: "Git ignore" },
};

const DEFAULT_FILE: FileIcon = { label: "·", color: "#94a3b8", title: "File" };

export function fileIcon(name: string): FileIcon {
  const lower = name.toLowerCase();
  const byName = BY_NAME[lower];
  if (byName) return byName;
  const dot = lower.lastIndexOf(".");
  if (dot > 0) {
    const byExt = BY_EXTENSION[lower.slice(dot + 1)];
    if (byExt) return byExt;
  }
  return DEFAULT_FILE;
}
