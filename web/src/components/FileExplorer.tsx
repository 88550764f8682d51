/** The file explorer: an ARIA tree of the workspace with inline create/rename, a context menu and drag-to-move. */
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent, type KeyboardEvent, type MouseEvent, type ReactNode } from "react";
import type { FileItem } from "../api/types";
import { fileIcon } from "../modules/files/fileIcons";
import { baseName, joinPath, parentPath, validateName } from "../modules/files/paths";
import { buildTree, childNames, expandTo, findNode, moveDestination, visibleRows } from "../modules/files/tree";
import { treeKeyAction } from "../modules/files/treeKeyboard";
import { fromDataTransfer, type PickedFile } from "../modules/files/upload";
import type { FilesState } from "../modules/files/useWorkspaceFiles";
import { ContextMenu, type MenuItem } from "./ContextMenu";
import { ChevronIcon, CollapseIcon, FilePlusIcon, FolderIcon, FolderPlusIcon, RefreshIcon } from "./Icons";
import { Spinner } from "./PageStates";

type Editing = { mode: "file" | "folder"; parent: string } | { mode: "rename"; path: string };

interface FileExplorerProps {
  items: readonly FileItem[];
  state: FilesState;
  activePath: string | null;
  dirtyPaths: ReadonlySet<string>;
  onOpen(path: string): void;
  onCreate(kind: "file" | "folder", path: string): Promise<boolean>;
  onMove(from: string, to: string): Promise<boolean>;
  onDelete(path: string, type: "file" | "folder"): void;
  onRefresh(): void;
  /** Files or folders dropped from the desktop onto the tree, into `folder` ("" = the root). */
  onUploadFiles?(folder: string, files: PickedFile[]): void;
  /** More buttons in the header (upload, download). */
  extraActions?: ReactNode;
}

const DRAG_TYPE = "application/x-cc-path";

export function FileExplorer(props: FileExplorerProps) {
  const { items, state, activePath } = props;
  const tree = useMemo(() => buildTree(items), [items]);
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const [focused, setFocused] = useState<string | null>(null);
  const [editing, setEditing] = useState<Editing | null>(null);
  const [editValue, setEditValue] = useState("");
  const [editError, setEditError] = useState<string | null>(null);
  const [menu, setMenu] = useState<{ x: number; y: number; path: string | null } | null>(null);
  const [dropTarget, setDropTarget] = useState<string | null>(null);
  const treeRef = useRef<HTMLDivElement>(null);
  const rows = useMemo(() => visibleRows(tree, expanded), [tree, expanded]);
  const committing = useRef(false);
  const closeMenu = useCallback(() => setMenu(null), []);

  // Reveal the active editor file in the tree.
  useEffect(() => {
    if (activePath) setExpanded((e) => expandTo(e, activePath));
  }, [activePath]);

  const focusRow = (path: string) => {
    setFocused(path);
    requestAnimationFrame(() => treeRef.current?.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`)?.focus());
  };

  /** The folder new items go into: the focused folder, or the focused file's folder. */
  const targetFolder = (path: string | null): string => {
    if (path === null) return "";
    const node = findNode(tree, path);
    if (!node) return "";
    return node.type === "folder" ? node.path : parentPath(node.path);
  };

  const startCreate = (mode: "file" | "folder", parent: string) => {
    if (parent) setExpanded((e) => new Set(e).add(parent));
    setEditing({ mode, parent });
    setEditValue("");
    setEditError(null);
  };
  const startRename = (path: string) => {
    setEditing({ mode: "rename", path });
    setEditValue(baseName(path));
    setEditError(null);
  };
  const toggle = (path: string) =>
    setExpanded((e) => {
      const n = new Set(e);
      if (n.has(path)) n.delete(path);
      else n.add(path);
      return n;
    });

  const commitEdit = async () => {
    if (!editing || committing.current) return;
    const name = editValue.trim();
    const folder = editing.mode === "rename" ? parentPath(editing.path) : editing.parent;
    const siblings = childNames(items, folder).filter((n) => editing.mode !== "rename" || n !== baseName(editing.path));
    if (editing.mode === "rename" && name === baseName(editing.path)) {
      setEditing(null);
      return;
    }
    const problem = validateName(name, siblings);
    if (problem) {
      setEditError(problem);
      return;
    }
    const target = joinPath(folder, name);
    committing.current = true;
    let ok = false;
    try {
      ok = editing.mode === "rename" ? await props.onMove(editing.path, target) : await props.onCreate(editing.mode, target);
    } finally {
      committing.current = false;
    }
    if (ok) {
      // Move focus to the new row unless the user has meanwhile clicked another one.
      const focusElsewhere = treeRef.current?.contains(document.activeElement) && document.activeElement?.tagName !== "INPUT";
      setEditing(null);
      if (editing.mode === "file") props.onOpen(target);
      setExpanded((e) => expandTo(e, target));
      if (!focusElsewhere) focusRow(target);
    }
  };

  const onTreeKeyDown = (e: KeyboardEvent) => {
    if (editing) return;
    const action = treeKeyAction(rows, focused, e.key, expanded);
    if (action.kind === "none") return;
    e.preventDefault();
    switch (action.kind) {
      case "focus":
        focusRow(action.path);
        break;
      case "expand":
      case "collapse":
        toggle(action.path);
        break;
      case "open":
        props.onOpen(action.path);
        break;
      case "rename":
        startRename(action.path);
        break;
      case "delete": {
        const node = findNode(tree, action.path);
        if (node) props.onDelete(node.path, node.type);
        break;
      }
    }
  };

  const openMenu = (e: MouseEvent, path: string | null) => {
    e.preventDefault();
    e.stopPropagation();
    if (path) setFocused(path);
    // Opened from the keyboard (Shift+F10, the Menu key): place it at the row, not the screen corner.
    if (e.clientX === 0 && e.clientY === 0) {
      const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
      setMenu({ x: r.left + 24, y: r.top + Math.min(r.height, 24), path });
    } else {
      setMenu({ x: e.clientX, y: e.clientY, path });
    }
  };

  const menuItems = (path: string | null): MenuItem[] => {
    const folder = targetFolder(path);
    const list: MenuItem[] = [
      { label: "New File…", onSelect: () => startCreate("file", folder) },
      { label: "New Folder…", onSelect: () => startCreate("folder", folder) },
    ];
    if (path) {
      const node = findNode(tree, path);
      list.push({ label: "Rename…", shortcut: "F2", separatorBefore: true, onSelect: () => startRename(path) });
      list.push({ label: "Copy Path", onSelect: () => void navigator.clipboard?.writeText(path).catch(() => undefined) });
      if (node) list.push({ label: "Delete", shortcut: "Del", danger: true, separatorBefore: true, onSelect: () => props.onDelete(node.path, node.type) });
    }
    return list;
  };

  // ---- drag and drop ----
  const onDragStart = (e: DragEvent, path: string) => {
    e.dataTransfer.setData(DRAG_TYPE, path);
    e.dataTransfer.setData("text/plain", path);
    e.dataTransfer.effectAllowed = "move";
  };
  const dropFolderOf = (path: string | null) => (path === null ? "" : targetFolder(path));
  const onDragOver = (e: DragEvent, path: string | null) => {
    const external = !e.dataTransfer.types.includes(DRAG_TYPE) && e.dataTransfer.types.includes("Files");
    if (!e.dataTransfer.types.includes(DRAG_TYPE) && !external) return;
    e.preventDefault();
    e.stopPropagation();
    e.dataTransfer.dropEffect = external ? "copy" : "move";
    setDropTarget(dropFolderOf(path));
  };
  const onDrop = (e: DragEvent, path: string | null) => {
    const source = e.dataTransfer.getData(DRAG_TYPE);
    setDropTarget(null);
    if (!source && e.dataTransfer.types.includes("Files") && props.onUploadFiles) {
      e.preventDefault();
      e.stopPropagation();
      const folder = dropFolderOf(path);
      const upload = props.onUploadFiles;
      void fromDataTransfer(e.dataTransfer).then((files) => files.length > 0 && upload(folder, files));
      return;
    }
    if (!source) return;
    e.preventDefault();
    e.stopPropagation();
    const dest = moveDestination(source, dropFolderOf(path));
    if (dest) {
      void props.onMove(source, dest).then((ok) => {
        if (ok) {
          setExpanded((x) => expandTo(x, dest));
          setFocused(dest);
        }
      });
    }
  };

  const editInput = (depth: number, icon: ReactNode) => (
    <div className="tree-row tree-edit" style={{ paddingLeft: 8 + depth * 14 }}>
      <span className="tree-twisty" />
      {icon}
      <div className="tree-edit-box">
        <input
          className="tree-input"
          autoFocus
          aria-label={editing?.mode === "rename" ? "New name" : editing?.mode === "folder" ? "New folder name" : "New file name"}
          aria-invalid={editError ? true : undefined}
          value={editValue}
          onChange={(e) => {
            setEditValue(e.target.value);
            setEditError(null);
          }}
          onFocus={(e) => {
            const v = e.target.value;
            const dot = v.lastIndexOf(".");
            e.target.setSelectionRange(0, dot > 0 ? dot : v.length);
          }}
          onKeyDown={(e) => {
            e.stopPropagation();
            if (e.key === "Enter") void commitEdit();
            if (e.key === "Escape") setEditing(null);
          }}
          onBlur={() => {
            if (!editValue.trim()) setEditing(null);
            else void commitEdit();
          }}
        />
        {editError && <div className="tree-input-error" role="alert">{editError}</div>}
      </div>
    </div>
  );

  const folderIcon = (open: boolean) => <FolderIcon className={`tree-icon folder-icon ${open ? "is-open" : ""}`} width={16} height={16} />;
  const iconFor = (name: string) => {
    const ic = fileIcon(name);
    return (
      <span className="tree-icon file-icon" style={{ color: ic.color }} title={ic.title} aria-hidden>
        {ic.label}
      </span>
    );
  };

  const renderRows = () => {
    const out: ReactNode[] = [];
    if (editing && editing.mode !== "rename" && editing.parent === "") out.push(<div key="__new">{editInput(0, editing.mode === "folder" ? folderIcon(false) : iconFor(editValue))}</div>);
    for (const row of rows) {
      const { node, depth } = row;
      const isFolder = node.type === "folder";
      const isOpen = isFolder && expanded.has(node.path);
      if (editing?.mode === "rename" && editing.path === node.path) {
        out.push(<div key={node.path}>{editInput(depth, isFolder ? folderIcon(isOpen) : iconFor(editValue))}</div>);
      } else {
        const dirty = props.dirtyPaths.has(node.path);
        out.push(
          <div
            key={node.path}
            role="treeitem"
            data-path={node.path}
            aria-level={depth + 1}
            aria-setsize={row.setSize}
            aria-posinset={row.posInSet}
            aria-expanded={isFolder ? isOpen : undefined}
            aria-selected={node.path === activePath}
            tabIndex={(focused ?? rows[0]?.node.path) === node.path ? 0 : -1}
            className={[
              "tree-row",
              node.path === activePath ? "is-active" : "",
              node.path === focused ? "is-focused" : "",
              isFolder && dropTarget === node.path ? "is-drop-target" : "",
            ].join(" ")}
            style={{ paddingLeft: 8 + depth * 14 }}
            draggable
            onDragStart={(e) => onDragStart(e, node.path)}
            onDragOver={(e) => onDragOver(e, node.path)}
            onDragLeave={() => setDropTarget(null)}
            onDrop={(e) => onDrop(e, node.path)}
            onFocus={() => setFocused(node.path)}
            onClick={() => {
              setFocused(node.path);
              if (isFolder) toggle(node.path);
              else props.onOpen(node.path);
            }}
            onContextMenu={(e) => openMenu(e, node.path)}
            title={node.path}
          >
            <span className="tree-twisty" aria-hidden>
              {isFolder && <ChevronIcon className={isOpen ? "is-open" : ""} width={14} height={14} />}
            </span>
            {isFolder ? folderIcon(isOpen) : iconFor(node.name)}
            <span className="tree-name">{node.name}</span>
            {dirty && <span className="tree-dirty" aria-label="unsaved changes" />}
          </div>,
        );
      }
      if (editing && editing.mode !== "rename" && editing.parent === node.path && isOpen) {
        out.push(<div key={`__new-${node.path}`}>{editInput(depth + 1, editing.mode === "folder" ? folderIcon(false) : iconFor(editValue))}</div>);
      }
    }
    return out;
  };

  return (
    <section className="explorer" aria-label="Files">
      <div className="panel-header">
        <span className="panel-title">Explorer</span>
        <div className="panel-actions">
          <button className="icon-btn" aria-label="New file" title="New file" onClick={() => startCreate("file", targetFolder(focused))}>
            <FilePlusIcon />
          </button>
          <button className="icon-btn" aria-label="New folder" title="New folder" onClick={() => startCreate("folder", targetFolder(focused))}>
            <FolderPlusIcon />
          </button>
          <button className="icon-btn" aria-label="Refresh file list" title="Refresh" onClick={props.onRefresh}>
            <RefreshIcon />
          </button>
          <button className="icon-btn" aria-label="Collapse all folders" title="Collapse all" onClick={() => setExpanded(new Set())}>
            <CollapseIcon />
          </button>
          {props.extraActions}
        </div>
      </div>
      <div
        className={`tree-scroll ${dropTarget === "" ? "is-drop-target" : ""}`}
        onContextMenu={(e) => openMenu(e, null)}
        onDragOver={(e) => onDragOver(e, null)}
        onDragLeave={() => setDropTarget(null)}
        onDrop={(e) => onDrop(e, null)}
      >
        {state.status === "loading" && (
          <div className="panel-empty">
            <Spinner small label="Loading files" /> Loading files…
          </div>
        )}
        {state.status === "error" && (
          <div className="panel-empty" role="alert">
            <p>Could not load the files: {state.message}</p>
            <button className="btn btn-sm" onClick={props.onRefresh}>
              Try again
            </button>
          </div>
        )}
        {state.status === "ready" && (
          <div ref={treeRef} role="tree" aria-label="Workspace files" onKeyDown={onTreeKeyDown}>
            {renderRows()}
          </div>
        )}
        {state.status === "ready" && items.length === 0 && !editing && (
          <div className="panel-empty">
            <p>This workspace is empty.</p>
            <button className="btn btn-sm" onClick={() => startCreate("file", "")}>
              Create a file
            </button>
          </div>
        )}
      </div>
      {menu && <ContextMenu x={menu.x} y={menu.y} label="File actions" items={menuItems(menu.path)} onClose={closeMenu} />}
    </section>
  );
}
