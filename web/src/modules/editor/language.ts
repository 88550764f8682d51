/** Which Monaco language a file gets, and how a file is run in a shell, by its name. */
import { baseName } from "../files/paths";

const BY_EXTENSION: Record<string, string> = {
  py: "python", pyw: "python", pyi: "python",
  js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  ts: "typescript", mts: "typescript", cts: "typescript", tsx: "typescript",
  json: "json", jsonc: "json",
  md: "markdown", markdown: "markdown",
  html: "html", htm: "html",
  css: "css", scss: "scss", less: "less",
  c: "c", h: "c",
  cpp: "cpp", cc: "cpp", cxx: "cpp", hpp: "cpp", hh: "cpp",
  go: "go", rs: "rust", java: "java", kt: "kotlin", rb: "ruby", php: "php", lua: "lua", r: "r",
  cs: "csharp", swift: "swift", scala: "scala", dart: "dart",
  sh: "shell", bash: "shell", zsh: "shell",
  yml: "yaml", yaml: "yaml", toml: "ini", ini: "ini", cfg: "ini",
  xml: "xml", svg: "xml", sql: "sql",
  txt: "plaintext", log: "plaintext", csv: "plaintext",
};

const BY_NAME: Record<string, string> = {
  dockerfile: "dockerfile",
  makefile: "plaintext",
  ".bashrc": "shell",
  ".profile": "shell",
};

export function languageForPath(path: string): string {
  const name = baseName(path).toLowerCase();
  const byName = BY_NAME[name];
  if (byName) return byName;
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return "plaintext";
  return BY_EXTENSION[name.slice(dot + 1)] ?? "plaintext";
}

/** Quotes a path for a POSIX shell. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The shell command that runs a file (the Run button's fallback when the backend has no run endpoint),
 * or null when the file's language cannot be run this way.
 */
export function runCommandForPath(path: string): string | null {
  const q = shellQuote(path);
  const stem = shellQuote(path.replace(/\.[^./]+$/, ""));
  switch (languageForPath(path)) {
    case "python": return `python3 ${q}`;
    case "javascript": return `node ${q}`;
    case "typescript": return `npx --yes tsx ${q}`;
    case "shell": return `bash ${q}`;
    case "ruby": return `ruby ${q}`;
    case "go": return `go run ${q}`;
    case "c": return `gcc ${q} -o ${stem} && ${stem.startsWith("'") || stem.includes("/") ? stem : `./${stem}`}`;
    case "cpp": return `g++ ${q} -o ${stem} && ${stem.startsWith("'") || stem.includes("/") ? stem : `./${stem}`}`;
    case "java": return `java ${q}`;
    default: return null;
  }
}
