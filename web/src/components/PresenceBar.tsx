/** Who is in the workspace and which file each has open, the co-editing switch, and "follow" a person. */
import type { PresenceEntry } from "../modules/collab/useCollab";
import { baseName } from "../modules/files/paths";

interface PresenceBarProps {
  entries: PresenceEntry[];
  live: boolean;
  following: number | null;
  onLive(on: boolean): void;
  onFollow(clientId: number | null): void;
}

export function PresenceBar({ entries, live, following, onLive, onFollow }: PresenceBarProps) {
  return (
    <div className="presence-bar" aria-label="People in this workspace">
      <ul className="presence-list" data-testid="presence-list">
        {entries.map((e) => (
          <li key={e.clientId} className="presence-entry" data-name={e.name} title={e.file ? `${e.name}: ${e.file}${e.line ? `:${e.line}` : ""}` : e.name}>
            <span className="presence-dot" style={{ background: e.color }} aria-hidden>
              {e.name.slice(0, 1).toUpperCase()}
            </span>
            <span className="presence-name">{e.self ? `${e.name} (you)` : e.name}</span>
            {e.file && <span className="presence-file">{baseName(e.file)}</span>}
            {!e.self && (
              <button
                className={`btn btn-sm ${following === e.clientId ? "btn-primary" : ""}`}
                aria-pressed={following === e.clientId}
                onClick={() => onFollow(following === e.clientId ? null : e.clientId)}
                title={`Open what ${e.name} has open and go to their cursor`}
              >
                {following === e.clientId ? "Following" : "Follow"}
              </button>
            )}
          </li>
        ))}
      </ul>
      <label className="presence-live" title="Live co-editing (on by default): everyone's changes appear as they type and the server saves them. Off: each file is saved with Ctrl+S">
        <input type="checkbox" checked={live} onChange={(e) => onLive(e.target.checked)} /> Co-edit
      </label>
    </div>
  );
}
