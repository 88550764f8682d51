/** Pure helpers for workspace paths (relative, '/'-separated, no leading slash). */

export function parentPath(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

export function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

export function joinPath(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

/** True when `path` is `ancestor` itself or inside it. */
export function isSameOrInside(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}/`);
}

/** The path `path` gets when `from` is moved to `to` (itself, a descendant, or unaffected). */
export function rebasePath(path: string, from: string, to: string): string {
  if (path === from) return to;
  if (path.startsWith(`${from}/`)) return to + path.slice(from.length);
  return path;
}

/** Why a new file/folder name is not acceptable, or null when it is. */
export function validateName(name: string, siblings: readonly string[] = []): string | null {
  const n = name.trim();
  if (!n) return "A name is required.";
  if (n === "." || n === "..") return "That name is reserved.";
  if (n.includes("\\")) return "Names cannot contain a backslash.";
  if (n.startsWith("/") || n.endsWith("/")) return "Names cannot start or end with '/'.";
  if (n.split("/").some((part) => part === "" || part === "." || part === "..")) return "That path is not valid.";
  if (n.length > 255) return "That name is too long.";
  if (siblings.includes(n)) return `"${n}" already exists here.`;
  return null;
}

/** Ancestors of a path, outermost first: "a/b/c" -> ["a", "a/b"]. */
export function ancestors(path: string): string[] {
  const parts = path.split("/");
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"));
  return out;
}
