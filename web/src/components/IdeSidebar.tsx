/** The IDE's side bar: the explorer or the search view, and the hidden pickers behind "Upload files/folder". On a phone it is a drawer. */
import { useRef, type ReactNode } from "react";
import { fromFileList, type PickedFile } from "../modules/files/upload";
import { FilesIcon, SearchIcon } from "./Icons";

export type SidebarView = "files" | "search";

interface IdeSidebarProps {
  view: SidebarView;
  onView(view: SidebarView): void;
  explorer: ReactNode;
  search: ReactNode;
}

export function IdeSidebar({ view, onView, explorer, search }: IdeSidebarProps) {
  return (
    <div className="ide-sidebar">
      <div className="sidebar-tabs" role="tablist" aria-label="Side bar">
        <button role="tab" aria-selected={view === "files"} className={`sidebar-tab ${view === "files" ? "is-active" : ""}`} onClick={() => onView("files")} title="Explorer">
          <FilesIcon width={15} height={15} /> Files
        </button>
        <button role="tab" aria-selected={view === "search"} className={`sidebar-tab ${view === "search" ? "is-active" : ""}`} onClick={() => onView("search")} title="Search (Ctrl+Shift+F)">
          <SearchIcon width={15} height={15} /> Search
        </button>
      </div>
      <div className="sidebar-body">{view === "files" ? explorer : search}</div>
    </div>
  );
}

/** Hidden <input type=file> pickers for files and for a whole folder; `open` clicks one. */
export function useFilePickers(onPick: (files: PickedFile[]) => void) {
  const filesRef = useRef<HTMLInputElement>(null);
  const folderRef = useRef<HTMLInputElement>(null);
  const onChange = (e: React.ChangeEvent<HTMLInputElement>) => {
    if (e.target.files && e.target.files.length > 0) onPick(fromFileList(e.target.files));
    e.target.value = "";
  };
  const pickers = (
    <>
      <input ref={filesRef} type="file" multiple hidden data-testid="upload-files-input" onChange={onChange} />
      {/* webkitdirectory is not in React's types; set as a plain attribute */}
      <input ref={folderRef} type="file" multiple hidden data-testid="upload-folder-input" onChange={onChange} {...{ webkitdirectory: "" }} />
    </>
  );
  return { pickers, pickFiles: () => filesRef.current?.click(), pickFolder: () => folderRef.current?.click() };
}
