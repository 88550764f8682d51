/** Keyboard navigation of the file tree (WAI-ARIA tree pattern) over the visible rows. */
import { parentPath } from "./paths";
import type { VisibleRow } from "./tree";

export type TreeKeyAction =
  | { kind: "focus"; path: string }
  | { kind: "expand"; path: string }
  | { kind: "collapse"; path: string }
  | { kind: "open"; path: string }
  | { kind: "rename"; path: string }
  | { kind: "delete"; path: string }
  | { kind: "none" };

/** What a key press on the focused row does. */
export function treeKeyAction(rows: readonly VisibleRow[], focused: string | null, key: string, expanded: ReadonlySet<string>): TreeKeyAction {
  if (rows.length === 0) return { kind: "none" };
  const idx = focused === null ? -1 : rows.findIndex((r) => r.node.path === focused);
  const first = rows[0]!.node.path;
  if (idx < 0) return key === "ArrowDown" || key === "ArrowUp" || key === "Home" ? { kind: "focus", path: first } : { kind: "none" };
  const row = rows[idx]!;
  const { node } = row;
  const isFolder = node.type === "folder";
  switch (key) {
    case "ArrowDown":
      return idx + 1 < rows.length ? { kind: "focus", path: rows[idx + 1]!.node.path } : { kind: "none" };
    case "ArrowUp":
      return idx > 0 ? { kind: "focus", path: rows[idx - 1]!.node.path } : { kind: "none" };
    case "Home":
      return { kind: "focus", path: first };
    case "End":
      return { kind: "focus", path: rows[rows.length - 1]!.node.path };
    case "ArrowRight":
      if (!isFolder) return { kind: "none" };
      if (!expanded.has(node.path)) return { kind: "expand", path: node.path };
      return node.children.length > 0 ? { kind: "focus", path: rows[idx + 1]!.node.path } : { kind: "none" };
    case "ArrowLeft": {
      if (isFolder && expanded.has(node.path)) return { kind: "collapse", path: node.path };
      const parent = parentPath(node.path);
      return parent ? { kind: "focus", path: parent } : { kind: "none" };
    }
    case "Enter":
    case " ":
      if (isFolder) return expanded.has(node.path) ? { kind: "collapse", path: node.path } : { kind: "expand", path: node.path };
      return { kind: "open", path: node.path };
    case "F2":
      return { kind: "rename", path: node.path };
    case "Delete":
      return { kind: "delete", path: node.path };
    default:
      return { kind: "none" };
  }
}
