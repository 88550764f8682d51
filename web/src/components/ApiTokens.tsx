import { useCallback, useEffect, useState, type FormEvent } from "react";
import { errorMessage } from "../api/errors";
import * as tokensApi from "../api/tokens";
import type { ApiToken } from "../api/tokens";
import { TrashIcon } from "./Icons";

/** The "API tokens" section: create a token (shown once), list and revoke them. A token
 * authenticates programs on the Judge0-compatible API (header X-Auth-Token). */
export function ApiTokens() {
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [name, setName] = useState("");
  const [fresh, setFresh] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      setTokens(await tokensApi.listTokens());
    } catch (e) {
      setError(errorMessage(e));
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  const onCreate = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    setBusy(true);
    setError(null);
    try {
      const created = await tokensApi.createToken(name.trim());
      setFresh(created.token);
      setName("");
      await load();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const onDelete = async (t: ApiToken) => {
    setError(null);
    try {
      await tokensApi.deleteToken(t.id);
      await load();
    } catch (err) {
      setError(errorMessage(err));
    }
  };

  return (
    <section className="api-tokens" aria-label="API tokens">
      <h2>API tokens</h2>
      <p>For programs using the Judge0-compatible API at /judge0 (send the token as X-Auth-Token).</p>
      <form className="create-form" onSubmit={(e) => void onCreate(e)} aria-label="Create an API token">
        <label htmlFor="new-token-name" className="sr-only">
          Token name
        </label>
        <input id="new-token-name" className="input" placeholder="Token name" value={name} maxLength={64} onChange={(e) => setName(e.target.value)} />
        <button className="btn btn-primary" type="submit" disabled={busy || !name.trim()}>
          {busy ? "Creating…" : "Create token"}
        </button>
      </form>
      {fresh && (
        <div className="alert" role="status">
          Copy this token now, it is not shown again: <code data-testid="new-token">{fresh}</code>
        </div>
      )}
      {error && (
        <div className="alert alert-error" role="alert">
          {error}
        </div>
      )}
      {tokens && tokens.length > 0 && (
        <ul className="session-list" aria-label="Your API tokens">
          {tokens.map((t) => (
            <li key={t.id} className="session-row">
              <div className="session-main">
                <span className="session-name">{t.name}</span>
                <div className="session-meta">
                  <span>{t.prefix}…</span>
                  <span>{t.last_used_at ? `Last used ${new Date(t.last_used_at).toLocaleString()}` : "Never used"}</span>
                </div>
              </div>
              <div className="session-actions">
                <button className="icon-btn" aria-label={`Revoke ${t.name}`} title="Revoke" onClick={() => void onDelete(t)}>
                  <TrashIcon />
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      {tokens && tokens.length === 0 && <div className="session-meta">No API tokens yet.</div>}
    </section>
  );
}
