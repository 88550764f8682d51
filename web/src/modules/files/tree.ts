/**
 * The file tree: built client-side from the API's flat, path-sorted item list, and the flat item list
 * kept up to date by workspace events (the tree is always rebuilt from the list, never mutated).
 */
import type { FileItem, ItemType } from "../../api/types";
import { ancestors, baseName, isSameOrInside, parentPath, rebasePath } from "./paths";

export interface TreeNode {
  path: string;
  name: string;
  type: ItemType;
  /** The server's item; synthesized (version 0) for a folder implied only by its children. */
  item: FileItem;
  children: TreeNode[];
}

export interface VisibleRow {
  node: TreeNode;
  depth: number;
  /** 1-based position among its siblings and their count (for aria-posinset / aria-setsize). */
  posInSet: number;
  setSize: number;
}

export function syntheticFolder(path: string): FileItem {
  return { path, name: baseName(path), type: "folder", size: 0, version: 0, content_hash: null, is_binary: false, updated_at: "" };
}

/** Folders first, then by name, case-insensitively (like VS Code). */
export function compareNodes(a: TreeNode, b: TreeNode): number {
  if (a.type !== b.type) return a.type === "folder" ? -1 : 1;
  const byName = a.name.localeCompare(b.name, undefined, { sensitivity: "base", numeric: true });
  return byName !== 0 ? byName : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Builds the root's children from a flat item list in any order; missing parent folders are synthesized. */
export function buildTree(items: readonly FileItem[]): TreeNode[] {
  const byPath = new Map<string, TreeNode>();
  const root: TreeNode = { path: "", name: "", type: "folder", item: syntheticFolder(""), children: [] };

  const ensureFolder = (path: string): TreeNode => {
    if (path === "") return root;
    const existing = byPath.get(path);
    if (existing) return existing;
    const node: TreeNode = { path, name: baseName(path), type: "folder", item: syntheticFolder(path), children: [] };
    byPath.set(path, node);
    ensureFolder(parentPath(path)).children.push(node);
    return node;
  };

  for (const item of items) {
    if (!item.path) continue;
    const existing = byPath.get(item.path);
    if (existing) {
      // A folder that was synthesized before its own item arrived: adopt the real item.
      existing.item = item;
      existing.type = item.type;
      continue;
    }
    const node: TreeNode = { path: item.path, name: baseName(item.path), type: item.type, item, children: [] };
    byPath.set(item.path, node);
    ensureFolder(parentPath(item.path)).children.push(node);
  }

  const sortRec = (nodes: TreeNode[]) => {
    nodes.sort(compareNodes);
    for (const n of nodes) if (n.children.length) sortRec(n.children);
  };
  sortRec(root.children);
  return root.children;
}

/** The rows shown for the given expanded folders, in display order. */
export function visibleRows(nodes: readonly TreeNode[], expanded: ReadonlySet<string>, depth = 0): VisibleRow[] {
  const out: VisibleRow[] = [];
  nodes.forEach((node, i) => {
    out.push({ node, depth, posInSet: i + 1, setSize: nodes.length });
    if (node.type === "folder" && expanded.has(node.path)) out.push(...visibleRows(node.children, expanded, depth + 1));
  });
  return out;
}

export function findNode(nodes: readonly TreeNode[], path: string): TreeNode | null {
  for (const n of nodes) {
    if (n.path === path) return n;
    if (n.type === "folder" && isSameOrInside(path, n.path)) return findNode(n.children, path);
  }
  return null;
}

/** Names directly inside a folder ("" = root). */
export function childNames(items: readonly FileItem[], folder: string): string[] {
  return items.filter((i) => parentPath(i.path) === folder).map((i) => baseName(i.path));
}

// ---- Operations on the flat list (applied for API results and for workspace events) ----

function sortItems(items: FileItem[]): FileItem[] {
  return items.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Inserts or replaces an item, adding synthesized folders for missing parents. */
export function upsertItem(items: readonly FileItem[], item: FileItem): FileItem[] {
  const present = new Set(items.map((i) => i.path));
  const out = items.filter((i) => i.path !== item.path);
  for (const a of ancestors(item.path)) if (!present.has(a)) out.push(syntheticFolder(a));
  out.push(item);
  return sortItems(out);
}

/** Removes a path and, for a folder, everything inside it. */
export function removePath(items: readonly FileItem[], path: string): FileItem[] {
  return items.filter((i) => !isSameOrInside(i.path, path));
}

/** Renames/moves a path and its subtree. */
export function movePathInList(items: readonly FileItem[], from: string, to: string): FileItem[] {
  if (from === to) return [...items];
  const moved = items.map((i) => {
    const p = rebasePath(i.path, from, to);
    return p === i.path ? i : { ...i, path: p, name: baseName(p) };
  });
  // Anything already at the destination is replaced by the moved subtree.
  const movedPaths = new Set(moved.filter((_, idx) => moved[idx] !== items[idx]).map((i) => i.path));
  const kept = moved.filter((i, idx) => moved[idx] !== items[idx] || !movedPaths.has(i.path));
  const present = new Set(kept.map((i) => i.path));
  for (const a of ancestors(to)) if (!present.has(a)) kept.push(syntheticFolder(a));
  return sortItems(kept);
}

/** Why dropping `source` onto folder `targetFolder` is not a move, or null when it is one. */
export function moveDestination(source: string, targetFolder: string): string | null {
  if (isSameOrInside(targetFolder, source)) return null; // into itself or its own subtree
  if (parentPath(source) === targetFolder) return null; // already there
  return targetFolder ? `${targetFolder}/${baseName(source)}` : baseName(source);
}

/** The folders to expand so that `path` is visible. */
export function expandTo(expanded: ReadonlySet<string>, path: string): Set<string> {
  const out = new Set(expanded);
  for (const a of ancestors(path)) out.add(a);
  return out;
}
