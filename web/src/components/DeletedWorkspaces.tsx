/** Dashboard: recently deleted workspaces (the trash), each restorable until it is purged. */
import { useEffect, useState } from "react";
import { errorMessage } from "../api/errors";
import * as historyApi from "../api/history";
import type { Snapshot } from "../api/history";
import type { Session } from "../api/types";
import { formatRelativeTime } from "../modules/format/relativeTime";

export function DeletedWorkspaces(props: { refreshKey: number; onRestored(s: Session): void }) {
  const [entries, setEntries] = useState<Snapshot[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    historyApi.listDeletedWorkspaces().then(setEntries, (e: unknown) => setError(errorMessage(e)));
  }, [props.refreshKey]);
  if (entries.length === 0 && !error) return null;
  const restore = async (s: Snapshot) => {
    try {
      const session = await historyApi.restoreWorkspace(s.id);
      setEntries((list) => list.filter((e) => e.id !== s.id));
      props.onRestored(session);
    } catch (e) {
      setError(errorMessage(e));
    }
  };
  return (
    <section className="deleted-workspaces" aria-label="Recently deleted">
      <h2>Recently deleted</h2>
      {error && <div className="alert alert-error" role="alert">{error}</div>}
      <ul className="session-list">
        {entries.map((s) => (
          <li key={s.id} className="session-row">
            <div className="session-main">
              <span className="session-name">{s.name}</span>
              <div className="session-meta">
                <span>{s.file_count} files</span>
                <span title={s.created_at}>Deleted {formatRelativeTime(s.created_at)}</span>
              </div>
            </div>
            <div className="session-actions">
              <button className="btn btn-sm" onClick={() => void restore(s)} aria-label={`Restore ${s.name}`}>
                Restore
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
