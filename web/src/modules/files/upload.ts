/** Files picked or dropped for upload: folders are walked (their relative paths kept), then each file is uploaded on its own (its own progress and error). */
import { useCallback, useState } from "react";
import { errorMessage } from "../../api/errors";
import { uploadFile } from "../../api/ide";

export interface PickedFile {
  path: string;
  file: File;
}

export interface UploadItem {
  path: string;
  loaded: number;
  total: number;
  status: "queued" | "uploading" | "done" | "error";
  error?: string;
}

/** Joins a target folder ("" = the root) and a relative path. */
export function joinPath(folder: string, rel: string): string {
  const clean = rel.replace(/^\/+/, "");
  return folder ? `${folder}/${clean}` : clean;
}

/** Files of an <input type=file> (with `webkitdirectory`, their paths inside the picked folder). */
export function fromFileList(list: FileList): PickedFile[] {
  return Array.from(list, (file) => ({ path: file.webkitRelativePath || file.name, file }));
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

async function walk(entry: FileSystemEntry, prefix: string, out: PickedFile[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ path: prefix + entry.name, file });
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    // readEntries answers in batches (100 in Chromium) until an empty one.
    for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
      for (const child of batch) await walk(child, `${prefix}${entry.name}/`, out);
    }
  }
}

/** Files and folders dropped on the page (folders walked recursively). */
export async function fromDataTransfer(dt: DataTransfer): Promise<PickedFile[]> {
  const entries = Array.from(dt.items)
    .map((item) => (item.kind === "file" ? item.webkitGetAsEntry() : null))
    .filter((e): e is FileSystemEntry => e !== null);
  if (entries.length === 0) return fromFileList(dt.files);
  const out: PickedFile[] = [];
  for (const e of entries) await walk(e, "", out);
  return out;
}

/** Uploads with per-file progress; a failure (size, quota, bad name) is reported on its file and the rest go on. */
export function useUploads(uuid: string) {
  const [items, setItems] = useState<UploadItem[]>([]);
  const update = (path: string, patch: Partial<UploadItem>) => setItems((list) => list.map((i) => (i.path === path ? { ...i, ...patch } : i)));

  const upload = useCallback(
    async (folder: string, files: PickedFile[]) => {
      const queued = files.map((f) => ({ ...f, path: joinPath(folder, f.path) }));
      setItems((list) => [...list.filter((i) => i.status === "uploading"), ...queued.map((f) => ({ path: f.path, loaded: 0, total: f.file.size, status: "queued" as const }))]);
      let failed = 0;
      const next = queued.slice();
      const worker = async () => {
        for (let f = next.shift(); f; f = next.shift()) {
          const { path, file } = f;
          update(path, { status: "uploading" });
          try {
            await uploadFile(uuid, path, file, (loaded, total) => update(path, { loaded, total }));
            update(path, { status: "done", loaded: file.size });
          } catch (err) {
            failed += 1;
            update(path, { status: "error", error: errorMessage(err) });
          }
        }
      };
      await Promise.all([worker(), worker(), worker()]);
      return { done: queued.length - failed, failed };
    },
    [uuid],
  );
  const clear = useCallback(() => setItems((list) => list.filter((i) => i.status === "uploading" || i.status === "queued")), []);
  return { items, upload, clear };
}
