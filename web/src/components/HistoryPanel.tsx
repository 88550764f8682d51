/** "History" dialog of the IDE: the open file's versions (diff against the current file, restore), the
 * workspace's snapshots (create, browse, restore) and its trash (restore). */
import { lazy, Suspense, useCallback, useEffect, useId, useState } from "react";
import { errorMessage } from "../api/errors";
import * as historyApi from "../api/history";
import type { Diff, Snapshot, SnapshotFile, Version } from "../api/history";
import { formatRelativeTime } from "../modules/format/relativeTime";
import { Modal } from "./Dialog";
import { Spinner } from "./PageStates";
import "../styles/history.css";

const DiffView = lazy(() => import("./DiffView"));

type Tab = "file" | "snapshots" | "trash";

interface Props {
  uuid: string;
  path: string | null;
  language: string;
  theme: "dark" | "light";
  onClose(): void;
  /** After a restore: the paths whose content changed (null = the whole tree). */
  onRestored(paths: string[] | null, message: string): void;
}

export function HistoryPanel(props: Props) {
  const id = useId();
  const [tab, setTab] = useState<Tab>(props.path ? "file" : "snapshots");
  const [error, setError] = useState<string | null>(null);
  return (
    <Modal labelledBy={id} onCancel={props.onClose}>
      <div className="history-panel">
        <h2 id={id}>History</h2>
        <div className="history-tabs" role="tablist">
          {(["file", "snapshots", "trash"] as const).map((t) => (
            <button key={t} role="tab" aria-selected={tab === t} className={tab === t ? "btn btn-sm btn-primary" : "btn btn-sm"} onClick={() => setTab(t)} disabled={t === "file" && !props.path}>
              {t === "file" ? "This file" : t === "snapshots" ? "Snapshots" : "Trash"}
            </button>
          ))}
        </div>
        {error && <div className="alert alert-error" role="alert">{error}</div>}
        {tab === "file" && props.path && <FileHistory {...props} path={props.path} onError={setError} />}
        {tab === "snapshots" && <Snapshots {...props} onError={setError} />}
        {tab === "trash" && <Trash {...props} onError={setError} />}
        <div className="dialog-actions">
          <button className="btn" onClick={props.onClose}>
            Close
          </button>
        </div>
      </div>
    </Modal>
  );
}

function FileHistory(props: Props & { path: string; onError(m: string | null): void }) {
  const { uuid, path, onError } = props;
  const [versions, setVersions] = useState<Version[] | null>(null);
  const [selected, setSelected] = useState<number | null>(null);
  const [diff, setDiff] = useState<Diff | null>(null);
  const load = useCallback(() => {
    historyApi.listVersions(uuid, path).then(setVersions, (e: unknown) => onError(errorMessage(e)));
  }, [uuid, path, onError]);
  useEffect(load, [load]);
  useEffect(() => {
    setDiff(null);
    if (selected !== null) historyApi.diffVersions(uuid, selected).then(setDiff, (e: unknown) => onError(errorMessage(e)));
  }, [uuid, selected, onError]);
  const restore = async (v: Version) => {
    try {
      const r = await historyApi.restoreVersion(uuid, v.id);
      props.onRestored([r.path], `Restored ${r.path} to the version of ${formatRelativeTime(v.created_at)}`);
      load();
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  if (!versions) return <Spinner label="Loading versions" />;
  if (versions.length === 0) return <p>No versions of {path} yet.</p>;
  return (
    <div className="history-body">
      <ul className="history-list" aria-label="Versions">
        {versions.map((v) => (
          <li key={v.id} className={selected === v.id ? "history-item selected" : "history-item"}>
            <button className="history-pick" onClick={() => setSelected(v.id)} disabled={v.kind === "delete"}>
              <strong>{v.kind === "delete" ? "deleted" : `${v.size} B`}</strong> · {v.source}
              {v.changes > 1 ? ` · ${v.changes} changes` : ""} · <span title={v.created_at}>{formatRelativeTime(v.created_at)}</span>
            </button>
            {v.kind === "write" && (
              <button className="btn btn-sm" onClick={() => void restore(v)} aria-label={`Restore version ${v.id}`}>
                Restore
              </button>
            )}
          </li>
        ))}
      </ul>
      {selected !== null && (
        <div className="history-preview">
          {!diff ? (
            <Spinner label="Loading diff" />
          ) : diff.binary ? (
            <p>Binary content: no diff.</p>
          ) : (
            <Suspense fallback={<Spinner label="Loading editor" />}>
              <div className="history-diff-caption">Version (left) · current file (right)</div>
              <DiffView original={diff.from_content ?? ""} modified={diff.to_content ?? ""} language={props.language} theme={props.theme} />
            </Suspense>
          )}
        </div>
      )}
    </div>
  );
}

function Snapshots(props: Props & { onError(m: string | null): void }) {
  const { uuid, onError } = props;
  const [snaps, setSnaps] = useState<Snapshot[] | null>(null);
  const [name, setName] = useState("");
  const [browsing, setBrowsing] = useState<{ snap: Snapshot; files: SnapshotFile[]; open: string | null; content: string | null } | null>(null);
  const load = useCallback(() => {
    historyApi.listSnapshots(uuid).then(setSnaps, (e: unknown) => onError(errorMessage(e)));
  }, [uuid, onError]);
  useEffect(load, [load]);
  const create = async () => {
    try {
      await historyApi.createSnapshot(uuid, name.trim() || "Snapshot");
      setName("");
      load();
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  const restore = async (s: Snapshot) => {
    try {
      const r = await historyApi.restoreSnapshot(uuid, s.id);
      props.onRestored(null, `Restored snapshot “${s.name}” (${r.restored_items} items); the previous state is snapshot #${r.safety_snapshot_id}`);
      load();
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  const browse = async (s: Snapshot) => {
    try {
      setBrowsing({ snap: s, files: await historyApi.snapshotFiles(uuid, s.id), open: null, content: null });
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  const openFile = async (path: string) => {
    if (!browsing) return;
    try {
      const f = await historyApi.snapshotFile(uuid, browsing.snap.id, path);
      setBrowsing({ ...browsing, open: path, content: f.encoding === "utf-8" ? f.content : "(binary content)" });
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  return (
    <div className="history-body history-column">
      <form
        className="history-create"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <input aria-label="Snapshot name" placeholder="Snapshot name" value={name} maxLength={255} onChange={(e) => setName(e.target.value)} />
        <button className="btn btn-sm btn-primary" type="submit">
          Take snapshot
        </button>
      </form>
      {!snaps ? (
        <Spinner label="Loading snapshots" />
      ) : (
        <ul className="history-list" aria-label="Snapshots">
          {snaps.map((s) => (
            <li key={s.id} className="history-item">
              <span>
                <strong>{s.name}</strong> · {s.kind} · {s.file_count} files · <span title={s.created_at}>{formatRelativeTime(s.created_at)}</span>
              </span>
              <span>
                <button className="btn btn-sm" onClick={() => void browse(s)}>
                  Browse
                </button>{" "}
                <button className="btn btn-sm" onClick={() => void restore(s)} aria-label={`Restore snapshot ${s.name}`}>
                  Restore
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}
      {browsing && (
        <div className="history-browse" aria-label={`Files of ${browsing.snap.name}`}>
          <ul className="history-list">
            {browsing.files.map((f) => (
              <li key={f.path} className="history-item">
                {f.type === "file" ? (
                  <button className="history-pick" onClick={() => void openFile(f.path)}>
                    {f.path}
                  </button>
                ) : (
                  <span>{f.path}/</span>
                )}
              </li>
            ))}
          </ul>
          {browsing.open && (
            <pre className="history-file" aria-label={`Content of ${browsing.open}`}>
              {browsing.content}
            </pre>
          )}
        </div>
      )}
    </div>
  );
}

function Trash(props: Props & { onError(m: string | null): void }) {
  const { uuid, onError } = props;
  const [entries, setEntries] = useState<Snapshot[] | null>(null);
  const load = useCallback(() => {
    historyApi.listSnapshots(uuid, true).then(setEntries, (e: unknown) => onError(errorMessage(e)));
  }, [uuid, onError]);
  useEffect(load, [load]);
  const restore = async (s: Snapshot) => {
    try {
      const r = await historyApi.restoreTrash(uuid, s.id);
      props.onRestored([r.path], `Restored ${r.path} from the trash`);
      load();
    } catch (e) {
      onError(errorMessage(e));
    }
  };
  if (!entries) return <Spinner label="Loading trash" />;
  if (entries.length === 0) return <p>The trash is empty.</p>;
  return (
    <ul className="history-list" aria-label="Trash">
      {entries.map((s) => (
        <li key={s.id} className="history-item">
          <span>
            <strong>{s.root_path}</strong> · {s.root_type} · {s.file_count} files · deleted <span title={s.created_at}>{formatRelativeTime(s.created_at)}</span>
          </span>
          <button className="btn btn-sm" onClick={() => void restore(s)} aria-label={`Restore ${s.root_path}`}>
            Restore
          </button>
        </li>
      ))}
    </ul>
  );
}
