import { describe, expect, it } from "vitest";
import type { FileItem } from "../../api/types";
import { ancestors, rebasePath, validateName } from "./paths";
import { buildTree, childNames, expandTo, findNode, moveDestination, movePathInList, removePath, upsertItem, visibleRows } from "./tree";
import { treeKeyAction } from "./treeKeyboard";

const file = (path: string, version = 1): FileItem => ({
  path, name: path.split("/").pop()!, type: "file", size: 1, version, content_hash: null, is_binary: false, updated_at: "",
});
const folder = (path: string): FileItem => ({ ...file(path), type: "folder", size: 0 });

const items: FileItem[] = [
  file("README.md"),
  folder("src"),
  file("src/main.py"),
  folder("src/lib"),
  file("src/lib/a.py"),
  file("Zeta.txt"),
  file("alpha.py"),
  folder("data"),
];

describe("buildTree", () => {
  it("puts folders first, then names case-insensitively", () => {
    expect(buildTree(items).map((n) => n.name)).toEqual(["data", "src", "alpha.py", "README.md", "Zeta.txt"]);
    expect(findNode(buildTree(items), "src")!.children.map((n) => n.name)).toEqual(["lib", "main.py"]);
  });

  it("synthesizes folders that only their children imply, in any input order", () => {
    const tree = buildTree([file("x/y/z.py"), file("b.py"), folder("x")]);
    expect(tree.map((n) => n.path)).toEqual(["x", "b.py"]);
    const y = findNode(tree, "x/y")!;
    expect(y.type).toBe("folder");
    expect(y.item.version).toBe(0);
    expect(y.children.map((n) => n.path)).toEqual(["x/y/z.py"]);
  });

  it("sorts numbered names naturally", () => {
    expect(buildTree([file("f10.py"), file("f2.py"), file("f1.py")]).map((n) => n.name)).toEqual(["f1.py", "f2.py", "f10.py"]);
  });
});

describe("visibleRows", () => {
  it("shows only expanded folders' children, with depth and position", () => {
    const tree = buildTree(items);
    expect(visibleRows(tree, new Set()).map((r) => r.node.path)).toEqual(["data", "src", "alpha.py", "README.md", "Zeta.txt"]);
    const rows = visibleRows(tree, new Set(["src", "src/lib"]));
    expect(rows.map((r) => `${r.depth}:${r.node.path}`)).toEqual([
      "0:data", "0:src", "1:src/lib", "2:src/lib/a.py", "1:src/main.py", "0:alpha.py", "0:README.md", "0:Zeta.txt",
    ]);
    expect(rows[1]).toMatchObject({ posInSet: 2, setSize: 5 });
  });

  it("expandTo opens every ancestor", () => {
    expect([...expandTo(new Set(["q"]), "a/b/c.py")].sort()).toEqual(["a", "a/b", "q"]);
  });
});

describe("item list operations", () => {
  it("upsert adds missing parents and keeps the list sorted", () => {
    const out = upsertItem([file("b.py")], file("new/deep/f.py", 3));
    expect(out.map((i) => `${i.type}:${i.path}`)).toEqual(["file:b.py", "folder:new", "folder:new/deep", "file:new/deep/f.py"]);
    expect(upsertItem(out, file("b.py", 9)).find((i) => i.path === "b.py")!.version).toBe(9);
  });

  it("removing a folder removes its subtree but not look-alike siblings", () => {
    const out = removePath([...items, file("src2.py")], "src");
    expect(out.map((i) => i.path)).toEqual(["README.md", "Zeta.txt", "alpha.py", "data", "src2.py"].sort());
  });

  it("moving a folder moves its subtree and renames items", () => {
    const out = movePathInList(items, "src", "data/code");
    const paths = out.map((i) => i.path);
    expect(paths).toContain("data/code/lib/a.py");
    expect(paths).toContain("data/code/main.py");
    expect(paths.some((p) => p.startsWith("src"))).toBe(false);
    expect(out.find((i) => i.path === "data/code")!.name).toBe("code");
  });

  it("moving onto an existing path replaces it", () => {
    const out = movePathInList([file("a.py", 1), file("b.py", 2)], "a.py", "b.py");
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ path: "b.py", version: 1 });
  });

  it("childNames lists direct children only", () => {
    expect(childNames(items, "src").sort()).toEqual(["lib", "main.py"]);
    expect(childNames(items, "")).toContain("README.md");
  });
});

describe("drag to move", () => {
  it("gives the destination path, or null for a move into itself or where it already is", () => {
    expect(moveDestination("src/main.py", "data")).toBe("data/main.py");
    expect(moveDestination("src/main.py", "")).toBe("main.py");
    expect(moveDestination("src/main.py", "src")).toBeNull();
    expect(moveDestination("src", "src/lib")).toBeNull();
    expect(moveDestination("src", "src")).toBeNull();
    expect(moveDestination("src", "srcx")).toBe("srcx/src");
  });
});

describe("paths", () => {
  it("validates new names", () => {
    expect(validateName("ok.py")).toBeNull();
    expect(validateName("  ")).toMatch(/required/);
    expect(validateName("..")).toMatch(/reserved/);
    expect(validateName("a\\b")).toMatch(/backslash/);
    expect(validateName("a//b")).toMatch(/not valid/);
    expect(validateName("x.py", ["x.py"])).toMatch(/already exists/);
    expect(validateName("sub/new.py")).toBeNull();
  });
  it("rebases paths and lists ancestors", () => {
    expect(rebasePath("a/b/c", "a/b", "z")).toBe("z/c");
    expect(rebasePath("a/bc", "a/b", "z")).toBe("a/bc");
    expect(ancestors("a/b/c")).toEqual(["a", "a/b"]);
  });
});

describe("tree keyboard", () => {
  const tree = buildTree(items);
  const expanded = new Set(["src"]);
  const rows = visibleRows(tree, expanded);
  it("moves focus with arrows, Home and End", () => {
    expect(treeKeyAction(rows, null, "ArrowDown", expanded)).toEqual({ kind: "focus", path: "data" });
    expect(treeKeyAction(rows, "data", "ArrowDown", expanded)).toEqual({ kind: "focus", path: "src" });
    expect(treeKeyAction(rows, "src", "ArrowUp", expanded)).toEqual({ kind: "focus", path: "data" });
    expect(treeKeyAction(rows, "src", "End", expanded)).toEqual({ kind: "focus", path: "Zeta.txt" });
    expect(treeKeyAction(rows, "Zeta.txt", "Home", expanded)).toEqual({ kind: "focus", path: "data" });
  });
  it("expands, enters, collapses and goes to the parent", () => {
    expect(treeKeyAction(rows, "src/lib", "ArrowRight", expanded)).toEqual({ kind: "expand", path: "src/lib" });
    expect(treeKeyAction(rows, "src", "ArrowRight", expanded)).toEqual({ kind: "focus", path: "src/lib" });
    expect(treeKeyAction(rows, "src", "ArrowLeft", expanded)).toEqual({ kind: "collapse", path: "src" });
    expect(treeKeyAction(rows, "src/main.py", "ArrowLeft", expanded)).toEqual({ kind: "focus", path: "src" });
  });
  it("opens files, renames with F2 and deletes with Delete", () => {
    expect(treeKeyAction(rows, "alpha.py", "Enter", expanded)).toEqual({ kind: "open", path: "alpha.py" });
    expect(treeKeyAction(rows, "alpha.py", "F2", expanded)).toEqual({ kind: "rename", path: "alpha.py" });
    expect(treeKeyAction(rows, "alpha.py", "Delete", expanded)).toEqual({ kind: "delete", path: "alpha.py" });
    expect(treeKeyAction(rows, "alpha.py", "x", expanded)).toEqual({ kind: "none" });
  });
});
