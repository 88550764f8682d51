/** Progress of the current uploads: a bar per file, and each file's own error (too large, quota, bad name). */
import type { UploadItem } from "../modules/files/upload";
import { CloseIcon } from "./Icons";

export function UploadPanel({ items, onClose }: { items: UploadItem[]; onClose(): void }) {
  if (items.length === 0) return null;
  const busy = items.some((i) => i.status === "uploading" || i.status === "queued");
  const done = items.filter((i) => i.status === "done").length;
  const failed = items.filter((i) => i.status === "error").length;
  return (
    <div className="upload-panel" role="status" aria-label="Uploads">
      <div className="upload-head">
        <span>{busy ? `Uploading ${done + failed + 1} of ${items.length}…` : `Uploaded ${done} of ${items.length}${failed ? `, ${failed} failed` : ""}`}</span>
        {!busy && (
          <button className="icon-btn" aria-label="Close uploads" onClick={onClose}>
            <CloseIcon />
          </button>
        )}
      </div>
      <ul className="upload-list">
        {items.map((i) => (
          <li key={i.path} className={`upload-item is-${i.status}`} data-path={i.path}>
            <span className="upload-name" title={i.path}>
              {i.path}
            </span>
            <progress max={Math.max(i.total, 1)} value={i.status === "done" ? Math.max(i.total, 1) : i.loaded} aria-label={`Upload of ${i.path}`} />
            {i.error && <span className="upload-error">{i.error}</span>}
          </li>
        ))}
      </ul>
    </div>
  );
}
