/** The dashboard's "Shared with me" list and pending invitations (accept / decline). */
import { useCallback, useEffect, useState } from "react";
import { errorMessage } from "../api/errors";
import * as sharing from "../api/sharing";
import { Link } from "../modules/router/router";

type State = { status: "loading" } | { status: "error"; message: string } | { status: "ready"; shared: sharing.SharedSession[]; invitations: sharing.SharedSession[] };

export function SharedWithMe() {
  const [state, setState] = useState<State>({ status: "loading" });
  const load = useCallback(async () => {
    try {
      const [shared, invitations] = await Promise.all([sharing.sharedWithMe(), sharing.myInvitations()]);
      setState({ status: "ready", shared, invitations });
    } catch (err) {
      setState({ status: "error", message: errorMessage(err) });
    }
  }, []);
  useEffect(() => {
    void load();
  }, [load]);
  const answer = async (uuid: string, accept: boolean) => {
    try {
      await sharing.answerInvitation(uuid, accept);
    } finally {
      await load();
    }
  };
  if (state.status === "loading") return null;
  if (state.status === "error") return <div className="alert alert-error" role="alert">{state.message}</div>;
  if (state.shared.length === 0 && state.invitations.length === 0) return null;
  return (
    <section className="dashboard-shared" aria-label="Shared with me">
      {state.invitations.length > 0 && (
        <>
          <h2>Invitations</h2>
          <ul className="session-list">
            {state.invitations.map((x) => (
              <li key={x.session.uuid} className="session-item" data-invitation={x.session.uuid}>
                <span>
                  <strong>{x.session.name}</strong> from {x.invited_by_username ?? x.owner_username} as {x.role}
                </span>
                <button className="btn btn-sm btn-primary" onClick={() => void answer(x.session.uuid, true)}>Accept</button>
                <button className="btn btn-sm" onClick={() => void answer(x.session.uuid, false)}>Decline</button>
              </li>
            ))}
          </ul>
        </>
      )}
      {state.shared.length > 0 && (
        <>
          <h2>Shared with me</h2>
          <ul className="session-list">
            {state.shared.map((x) => (
              <li key={x.session.uuid} className="session-item">
                <Link to={`/s/${x.session.uuid}`}>{x.session.name}</Link>
                <span className="share-status"> {x.owner_username} · {x.role}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
