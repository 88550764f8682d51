/** The Preview tab: ports programs of the session listen on (polled while shown), each with "Open preview" in a frame and "Open in new tab". */
import { useCallback, useEffect, useState } from "react";
import { errorMessage } from "../api/errors";
import { listPorts, previewUrl, type PortInfo } from "../api/preview";

const POLL_MS = 2500;

export function PreviewPanel({ sessionUuid, active, sandboxRunning }: { sessionUuid: string; active: boolean; sandboxRunning: boolean }) {
  const [ports, setPorts] = useState<PortInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [open, setOpen] = useState<number | null>(null);
  const [path, setPath] = useState("/");
  const [reload, setReload] = useState(0);

  const refresh = useCallback(async () => {
    try {
      setPorts(await listPorts(sessionUuid));
      setError(null);
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [sessionUuid]);

  useEffect(() => {
    if (!active) return;
    void refresh();
    const t = window.setInterval(() => void refresh(), POLL_MS);
    return () => window.clearInterval(t);
  }, [active, refresh, sandboxRunning]);

  if (!active) return null;
  const src = open !== null && sandboxRunning ? previewUrl(sessionUuid, open, path) : null;
  return (
    <div className="preview-panel" aria-label="Preview">
      <div className="preview-bar">
        {ports === null ? (
          <span className="muted">Looking for ports…</span>
        ) : ports.length === 0 ? (
          <span className="muted" data-testid="no-ports">
            {sandboxRunning ? "No program listens on a port yet. Run a server (e.g. python3 -m http.server 8000) and it appears here." : "The sandbox is stopped: start it and run a server to preview it."}
          </span>
        ) : (
          ports.map((p) => (
            <span key={p.port} className={`preview-port ${open === p.port ? "is-active" : ""}`}>
              <button className="btn btn-sm" onClick={() => { setOpen(p.port); setReload((n) => n + 1); }} title={`Listening on ${p.address}:${p.port}`}>
                Open preview :{p.port}
              </button>
              <a className="btn btn-sm btn-ghost" href={previewUrl(sessionUuid, p.port)} target="_blank" rel="noopener noreferrer">
                New tab ↗
              </a>
            </span>
          ))
        )}
        {error && <span className="out-error">{error}</span>}
      </div>
      {src && (
        <>
          <form
            className="preview-address"
            onSubmit={(e) => {
              e.preventDefault();
              setReload((n) => n + 1);
            }}
          >
            <span className="muted">:{open}</span>
            <input className="input" aria-label="Preview path" value={path} onChange={(e) => setPath(e.target.value || "/")} />
            <button className="btn btn-sm" type="submit">
              Reload
            </button>
          </form>
          <iframe key={`${src}#${reload}`} className="preview-frame" title={`Preview of port ${open}`} src={src} />
        </>
      )}
    </div>
  );
}
