/** Says so when the session's sandbox stops (why, and what was kept: files yes, processes, /tmp and ~ no) instead of letting things vanish silently. */
import { useEffect, useRef, useState } from "react";

export function SandboxNotice({ status, message, onStart }: { status: string; message: string | null; onStart(): void }) {
  const previous = useRef(status);
  const [notice, setNotice] = useState<{ status: string; reason: string | null } | null>(null);

  useEffect(() => {
    const was = previous.current;
    previous.current = status;
    if ((was === "running" || was === "starting") && (status === "stopped" || status === "error")) setNotice({ status, reason: message });
    if (status === "running" || status === "starting") setNotice(null);
  }, [status, message]);

  if (!notice) return null;
  return (
    <div className={`sandbox-notice ${notice.status === "error" ? "sandbox-notice-error" : ""}`} role="status" data-testid="sandbox-notice">
      <div>
        <strong>{notice.status === "error" ? "The sandbox ended with an error" : "The sandbox stopped"}</strong>
        {notice.reason ? `: ${notice.reason}.` : "."}{" "}
        Kept: every file of the workspace. Gone: running programs, terminal shells and their scrollback, background jobs, and what was in /tmp and ~ (home).
      </div>
      <div className="sandbox-notice-actions">
        <button className="btn btn-sm btn-primary" onClick={onStart}>
          Start it again
        </button>
        <button className="btn btn-sm btn-ghost" onClick={() => setNotice(null)}>
          Dismiss
        </button>
      </div>
    </div>
  );
}
