/** A public link's page (`/p/<token>`): the workspace's files read-only and its last run's output, no account needed; a fork link offers "Fork" to a signed-in user. */
import { useEffect, useState } from "react";
import { ApiError, errorMessage } from "../api/errors";
import * as sharing from "../api/sharing";
import { Brand } from "../components/Brand";
import { FullPageError, FullPageSpinner } from "../components/PageStates";
import { useNavigate, useParams } from "../modules/router/router";

type State = { status: "loading" } | { status: "error"; title: string; message: string } | { status: "ready"; ws: sharing.PublicWorkspace; run: sharing.PublicRun };

export function PublicLinkPage() {
  const { token = "" } = useParams();
  const navigate = useNavigate();
  const [state, setState] = useState<State>({ status: "loading" });
  const [path, setPath] = useState<string | null>(null);
  const [file, setFile] = useState<sharing.PublicFile | null>(null);
  const [fileError, setFileError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    Promise.all([sharing.openPublic(token), sharing.publicRun(token)]).then(
      ([ws, run]) => {
        if (cancelled) return;
        setState({ status: "ready", ws, run });
        const first = ws.entry_file ?? (ws.items.find((i) => i["type"] === "file")?.["path"] as string | undefined) ?? null;
        setPath(first);
      },
      (err: unknown) => {
        if (cancelled) return;
        const gone = err instanceof ApiError && err.status === 410;
        setState({ status: "error", title: gone ? "This link is no longer available" : "Link not found", message: errorMessage(err) });
      },
    );
    return () => {
      cancelled = true;
    };
  }, [token]);

  useEffect(() => {
    if (!path) return;
    setFile(null);
    setFileError(null);
    sharing.publicFile(token, path).then(setFile, (err: unknown) => setFileError(errorMessage(err)));
  }, [token, path]);

  if (state.status === "loading") return <FullPageSpinner label="Opening the link…" />;
  if (state.status === "error") return <FullPageError title={state.title} message={state.message} />;
  const { ws, run } = state;
  const onFork = async () => {
    try {
      const fork = await sharing.forkFromLink(token);
      navigate(`/s/${fork.uuid}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) navigate(`/login?next=${encodeURIComponent(`/p/${token}`)}`);
      else setFileError(errorMessage(err));
    }
  };
  return (
    <div className="public-page">
      <header className="ide-header">
        <Brand compact />
        <h1 className="ide-title">{ws.name}</h1>
        <span className="ide-view-only">Read only</span>
        <div className="ide-header-spacer" />
        {ws.permission === "fork" && (
          <button className="btn btn-sm btn-primary" onClick={() => void onFork()}>Fork</button>
        )}
      </header>
      <div className="public-body">
        <nav className="public-files" aria-label="Files">
          <ul>
            {ws.items
              .filter((i) => i["type"] === "file")
              .map((i) => {
                const p = String(i["path"]);
                return (
                  <li key={p}>
                    <button className={`btn btn-sm ${p === path ? "btn-primary" : ""}`} onClick={() => setPath(p)}>{p}</button>
                  </li>
                );
              })}
          </ul>
        </nav>
        <main className="public-file">
          {fileError && <div className="alert alert-error" role="alert">{fileError}</div>}
          {file && (
            <pre className="public-code" aria-label={`Content of ${file.path}`}>
              {file.encoding === "utf-8" ? file.content : "(binary file)"}
            </pre>
          )}
          <h2>Last run</h2>
          {run.status === null ? (
            <p>No run yet.</p>
          ) : (
            <pre className="public-run" aria-label="Last run output">
              {run.stdout}
              {run.stderr}
              {`\n[${run.status}${run.exit_code !== null ? `, exit ${run.exit_code}` : ""}]`}
            </pre>
          )}
        </main>
      </div>
    </div>
  );
}
