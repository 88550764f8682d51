/** The workspace's Share dialog: invite by username or email with a role, change or revoke members, and public links (create, copy, revoke). */
import { useCallback, useEffect, useId, useState, type FormEvent } from "react";
import { errorMessage } from "../api/errors";
import * as sharing from "../api/sharing";
import { Modal } from "./Dialog";

type Loaded = { members: sharing.Members; links: sharing.PublicLink[] };
const ROLES: sharing.MemberRole[] = ["viewer", "editor", "admin"];
const FORK_POLICIES: { value: sharing.ForkPolicy; label: string }[] = [
  { value: "members", label: "every member" },
  { value: "editors", label: "editors and admins" },
  { value: "owner", label: "the owner only" },
];

export function ShareDialog({ sessionUuid, onClose }: { sessionUuid: string; onClose: () => void }) {
  const titleId = useId();
  const [data, setData] = useState<Loaded | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [who, setWho] = useState("");
  const [role, setRole] = useState<sharing.MemberRole>("viewer");
  const [permission, setPermission] = useState<"read" | "fork">("read");
  const [expiresDays, setExpiresDays] = useState("");
  const [created, setCreated] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const load = useCallback(async () => {
    try {
      const members = await sharing.listMembers(sessionUuid);
      const canShare = members.your_role === "owner" || members.your_role === "admin";
      const links = canShare ? await sharing.listLinks(sessionUuid) : [];
      setData({ members, links });
    } catch (err) {
      setError(errorMessage(err));
    }
  }, [sessionUuid]);

  useEffect(() => {
    void load();
  }, [load]);

  const act = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
      await load();
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  const onInvite = (e: FormEvent) => {
    e.preventDefault();
    if (!who.trim()) return;
    void act(async () => {
      await sharing.inviteMember(sessionUuid, who.trim(), role);
      setWho("");
    });
  };

  const onCreateLink = () =>
    void act(async () => {
      const days = Number(expiresDays);
      const expires = expiresDays && days > 0 ? new Date(Date.now() + days * 86_400_000).toISOString() : null;
      const link = await sharing.createLink(sessionUuid, permission, expires);
      setCreated(`${window.location.origin}${link.url}`);
    });

  const mine = data?.members.your_role ?? "viewer";
  const canShare = mine === "owner" || mine === "admin";
  return (
    <Modal labelledBy={titleId} onCancel={onClose}>
      <h2 id={titleId}>Share this workspace</h2>
      {error && <div className="alert alert-error" role="alert">{error}</div>}
      {!data ? (
        <p>Loading…</p>
      ) : (
        <>
          {canShare && (
            <form className="share-invite" onSubmit={onInvite} aria-label="Invite">
              <input className="input" placeholder="Username or email" value={who} onChange={(e) => setWho(e.target.value)} aria-label="Username or email" data-autofocus />
              <select className="input" value={role} onChange={(e) => setRole(e.target.value as sharing.MemberRole)} aria-label="Role">
                {ROLES.filter((r) => r !== "admin" || mine === "owner").map((r) => (
                  <option key={r} value={r}>{r}</option>
                ))}
              </select>
              <button className="btn btn-primary" type="submit" disabled={busy || !who.trim()}>Invite</button>
            </form>
          )}
          <ul className="share-members" aria-label="Members">
            <li>
              <strong>{data.members.owner_username}</strong> <span className="share-role">owner</span>
            </li>
            {data.members.members.map((m) => (
              <li key={m.user_id} data-username={m.username}>
                <strong>{m.username}</strong>
                {m.status !== "accepted" && <span className="share-status"> ({m.status})</span>}
                {canShare && (mine === "owner" || m.role !== "admin") ? (
                  <>
                    <select
                      className="input input-sm"
                      value={m.role}
                      aria-label={`Role of ${m.username}`}
                      disabled={busy}
                      onChange={(e) => void act(() => sharing.changeRole(sessionUuid, m.user_id, e.target.value as sharing.MemberRole))}
                    >
                      {ROLES.filter((r) => r !== "admin" || mine === "owner").map((r) => (
                        <option key={r} value={r}>{r}</option>
                      ))}
                    </select>
                    <button className="btn btn-sm btn-danger" disabled={busy} onClick={() => void act(() => sharing.revokeMember(sessionUuid, m.user_id))}>
                      Revoke
                    </button>
                  </>
                ) : (
                  <span className="share-role"> {m.role}</span>
                )}
              </li>
            ))}
          </ul>
          <div className="share-invite">
            <label htmlFor={`${titleId}-fork`}>Who may fork</label>
            {canShare ? (
              <select
                id={`${titleId}-fork`}
                className="input"
                value={data.members.fork_policy}
                disabled={busy}
                onChange={(e) => void act(() => sharing.setForkPolicy(sessionUuid, e.target.value as sharing.ForkPolicy))}
              >
                {FORK_POLICIES.map((f) => (
                  <option key={f.value} value={f.value}>{f.label}</option>
                ))}
              </select>
            ) : (
              <span id={`${titleId}-fork`} className="share-role">{FORK_POLICIES.find((f) => f.value === data.members.fork_policy)?.label}</span>
            )}
          </div>
          {canShare && (
            <section aria-label="Public links">
              <h3>Public links</h3>
              <div className="share-invite">
                <select className="input" value={permission} onChange={(e) => setPermission(e.target.value as "read" | "fork")} aria-label="Link permission">
                  <option value="read">read only</option>
                  <option value="fork">may fork</option>
                </select>
                <input className="input" type="number" min="1" placeholder="expires in days (optional)" value={expiresDays} onChange={(e) => setExpiresDays(e.target.value)} aria-label="Expires in days" />
                <button className="btn" onClick={onCreateLink} disabled={busy}>Create link</button>
              </div>
              {created && (
                <div className="share-created">
                  <input className="input" readOnly value={created} aria-label="New link" onFocus={(e) => e.target.select()} />
                  <button className="btn btn-sm" onClick={() => void navigator.clipboard?.writeText(created)}>Copy</button>
                  <span className="share-status">Shown once: copy it now.</span>
                </div>
              )}
              <ul className="share-links">
                {data.links.map((l) => (
                  <li key={l.id}>
                    {l.permission} · {l.view_count} views
                    {l.expires_at && ` · expires ${new Date(l.expires_at).toLocaleString()}`}
                    {l.revoked_at ? (
                      <span className="share-status"> · revoked</span>
                    ) : (
                      <button className="btn btn-sm" disabled={busy} onClick={() => void act(() => sharing.revokeLink(sessionUuid, l.id))}>Revoke</button>
                    )}
                  </li>
                ))}
              </ul>
            </section>
          )}
        </>
      )}
      <div className="dialog-actions">
        <button className="btn" onClick={onClose}>Close</button>
      </div>
    </Modal>
  );
}
