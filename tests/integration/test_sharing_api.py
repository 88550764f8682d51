"""Sharing over the real API on SQLite and PostgreSQL: invitations, roles, the permission matrix
(every workspace route x none / pending / viewer / editor / admin / owner), public links."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from coolcoding.services.access import Role
from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.test_share_policy import app_routes, declared_roles

# No sandbox runtime here (its routes answer 503): the access check runs before that.
server = module_live_server(
    "share",
    runtime="kubernetes",
    share_cache_ttl_s=30.0,  # a change must invalidate the cache, not wait for its expiry
)


@dataclass
class Team:
    sid: str
    owner: UserClient
    admin: UserClient
    editor: UserClient
    viewer: UserClient
    pending: UserClient  # invited, not accepted: no access yet
    stranger: UserClient

    def by_role(self) -> dict[str, UserClient]:
        return {
            "none": self.stranger,
            "pending": self.pending,
            "viewer": self.viewer,
            "editor": self.editor,
            "admin": self.admin,
            "owner": self.owner,
        }

    def close(self) -> None:
        for u in self.by_role().values():
            u.client.close()


def invite(owner: UserClient, sid: str, who: UserClient, role: str) -> httpx.Response:
    return owner.client.post(
        f"/api/sessions/{sid}/members", json={"user": who.username, "role": role}
    )


def make_team(server: LiveServer) -> Team:
    owner = register_user(server, "own")
    sid = owner.new_session("shared")
    r = owner.client.post(f"/api/workspace/{sid}/file/main.py", json={"content": "print(1)\n"})
    assert r.status_code == 201, r.text
    t = Team(sid, owner, *(register_user(server, p) for p in ("adm", "edi", "vie", "pen", "str")))
    for u, role in ((t.admin, "admin"), (t.editor, "editor"), (t.viewer, "viewer")):
        assert invite(owner, sid, u, role).status_code == 201
        r = u.client.post(f"/api/invitations/{sid}/accept")
        assert r.status_code == 200, r.text
    assert invite(owner, sid, t.pending, "editor").status_code == 201
    return t


@pytest.fixture
def team(server: LiveServer) -> Iterator[Team]:
    t = make_team(server)
    yield t
    t.close()


def fill(path: str, sid: str) -> str:
    values = {
        "session_uuid": sid, "path:anypath": "notes/x.txt", "path:path": "index.html",
        "port": "8000", "terminal_id": "t1", "user_id": "999999", "link_id": "999999",
        "version_id": "999999", "snapshot_id": "999999", "entry_id": "999999",
    }  # fmt: skip
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


# Routes the matrix calls only for roles that must be refused (an allowed call would end the
# test's team: leaving, deleting the session); each has its own test below.
DESTRUCTIVE = {
    ("POST", "/api/sessions/{session_uuid}/leave"),
    ("DELETE", "/api/sessions/{session_uuid}"),
}
RANK = {"none": 0, "pending": 0, "viewer": 1, "editor": 2, "admin": 3, "owner": 4}


def matrix(server: LiveServer, tmp_path: Path) -> list[tuple[str, str, Role]]:
    rows = []
    for route in app_routes(tmp_path):
        if route.websocket or route.dependant is None or "{session_uuid}" not in route.path:
            continue
        roles = declared_roles(route.dependant)
        if not roles:
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            rows.append((method, route.path, min(roles)))
    assert len(rows) > 40
    return rows


def call(u: UserClient, method: str, url: str) -> httpx.Response:
    if method in ("POST", "PUT", "PATCH"):
        return u.client.request(method, url, json={})
    return u.client.request(method, url)


def test_permission_matrix(server: LiveServer, team: Team, tmp_path: Path) -> None:
    """Non-members and pending invitees: 404 as for a missing session; members below the
    route's role: 403 ``forbidden_role``; members at or above it: never a refusal."""
    before = team.owner.client.get(f"/api/workspace/{team.sid}/files").json()
    failures = []
    # Refused roles first: the tree must be unchanged after all of them.
    order = ["none", "pending", "viewer", "editor", "admin", "owner"]
    for who in order:
        u = team.by_role()[who]
        for method, path, need in matrix(server, tmp_path):
            allowed = RANK[who] >= need.value
            if allowed and (method, path) in DESTRUCTIVE:
                continue
            r = call(u, method, fill(path, team.sid))
            body: dict[str, Any] = {}
            if r.headers.get("content-type", "").startswith("application/json"):
                body = r.json() if isinstance(r.json(), dict) else {}
            code = body.get("error")
            if RANK[who] == 0:
                ok = r.status_code == 404 and code == "session_not_found"
            elif not allowed:
                ok = r.status_code == 403 and code == "forbidden_role"
                ok = ok and body.get("required_role") == need.label
            else:
                ok = r.status_code not in (401, 403) and code != "session_not_found"
            if not ok:
                failures.append(f"{who} {method} {path}: {r.status_code} {r.text[:120]}")
        if who == "viewer":  # none, pending and viewer have written nothing
            after = team.owner.client.get(f"/api/workspace/{team.sid}/files").json()
            assert after == before
    assert not failures, "\n".join(failures)


def test_viewer_refused_writes_leave_everything_unchanged(server: LiveServer, team: Team) -> None:
    sid, v = team.sid, team.viewer.client
    before = team.owner.client.get(f"/api/workspace/{sid}/file/main.py").json()
    attempts = [
        v.post(f"/api/workspace/{sid}/file/main.py", json={"content": "evil"}),
        v.post(f"/api/workspace/{sid}/file/new.py", json={"content": "evil"}),
        v.put(f"/api/workspace/{sid}/upload/main.py", content=b"evil"),
        v.delete(f"/api/workspace/{sid}/file/main.py"),
        v.post(f"/api/workspace/{sid}/folder/d"),
        v.post(f"/api/workspace/{sid}/move", json={"from": "main.py", "to": "m.py"}),
        v.patch(f"/api/sessions/{sid}", json={"name": "pwned"}),
        v.post(f"/api/sessions/{sid}/run", json={}),
        v.post(f"/api/sessions/{sid}/members", json={"user": team.stranger.username}),
        v.post(f"/api/sessions/{sid}/links", json={"permission": "read"}),
        v.post(f"/api/workspace/{sid}/snapshots", json={"name": "s"}),
    ]
    for r in attempts:
        assert r.status_code == 403, (r.request.url, r.text)
        assert r.json()["error"] == "forbidden_role"
    after = team.owner.client.get(f"/api/workspace/{sid}/file/main.py").json()
    assert after == before
    assert team.owner.client.get(f"/api/sessions/{sid}").json()["name"] == "shared"
    files = [
        i["path"] for i in team.owner.client.get(f"/api/workspace/{sid}/files").json()["items"]
    ]
    assert files == ["main.py"]


def last_modified_by(server: LiveServer, path: str) -> int | None:
    """``workspace_items.last_modified_by`` of the (one) file at ``path`` saved last."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def q() -> int | None:
        engine = create_async_engine(server.settings.database_url)
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(
                        text(
                            "SELECT last_modified_by FROM workspace_items WHERE full_path = :p"
                            " ORDER BY updated_at DESC LIMIT 1"
                        ),
                        {"p": path},
                    )
                ).first()
                return None if row is None else row[0]
        finally:
            await engine.dispose()

    return asyncio.run(q())


def test_editor_writes_and_is_recorded_as_the_author(server: LiveServer, team: Team) -> None:
    sid = team.sid
    r = team.editor.client.post(
        f"/api/workspace/{sid}/file/main.py", json={"content": "print(2)\n"}
    )
    assert r.status_code == 200, r.text
    assert (
        team.viewer.client.get(f"/api/workspace/{sid}/file/main.py").json()["content"]
        == "print(2)\n"
    )
    hist = team.owner.client.get(f"/api/workspace/{sid}/history", params={"path": "main.py"}).json()
    assert hist["versions"][0]["author_id"] == team.editor.user_id
    assert last_modified_by(server, "main.py") == team.editor.user_id
    r = team.owner.client.put(f"/api/workspace/{sid}/upload/main.py", content=b"print(3)\n")
    assert r.status_code == 200, r.text
    assert last_modified_by(server, "main.py") == team.owner.user_id
    # The network setting is the owner's alone; a rename is an editor's.
    r = team.editor.client.patch(f"/api/sessions/{sid}", json={"network_enabled": True})
    assert r.status_code == 403 and r.json()["required_role"] == "owner"
    assert (
        team.editor.client.patch(f"/api/sessions/{sid}", json={"name": "renamed"}).status_code
        == 200
    )
    got = team.editor.client.get(f"/api/sessions/{sid}").json()
    assert got["name"] == "renamed" and got["role"] == "editor"


def test_invitations_accept_decline_and_errors(server: LiveServer) -> None:
    owner, a, b = (register_user(server, p) for p in ("own", "ia", "ib"))
    sid = owner.new_session("s")
    assert a.client.get(f"/api/sessions/{sid}").status_code == 404
    r = owner.client.post(
        f"/api/sessions/{sid}/members", json={"user": a.username.upper(), "role": "editor"}
    )
    assert r.status_code == 201 and r.json()["status"] == "invited"
    # Pending: listed as an invitation, no access yet.
    inv = a.client.get("/api/invitations").json()
    assert [(x["session"]["uuid"], x["role"], x["owner_username"]) for x in inv] == [
        (sid, "editor", owner.username)
    ]
    assert a.client.get(f"/api/workspace/{sid}/files").status_code == 404
    # Bad invitations: unknown user, self, duplicate, a bad role.
    r = owner.client.post(f"/api/sessions/{sid}/members", json={"user": "nobody-here"})
    assert (r.status_code, r.json()["error"]) == (404, "user_not_found")
    r = owner.client.post(f"/api/sessions/{sid}/members", json={"user": owner.username})
    assert (r.status_code, r.json()["error"]) == (400, "invite_self")
    r = owner.client.post(
        f"/api/sessions/{sid}/members", json={"user": f"{a.username}@example.com"}
    )
    assert (r.status_code, r.json()["error"]) == (409, "already_member")
    r = owner.client.post(
        f"/api/sessions/{sid}/members", json={"user": b.username, "role": "owner"}
    )
    assert r.status_code == 422
    # Accept: shared with me; decline: gone from the invitations, no access.
    assert a.client.post(f"/api/invitations/{sid}/accept").json()["status"] == "accepted"
    shared = a.client.get("/api/shared").json()
    assert [(x["session"]["uuid"], x["role"], x["owner_username"]) for x in shared] == [
        (sid, "editor", owner.username)
    ]
    assert a.client.post(f"/api/invitations/{sid}/accept").status_code == 404
    owner.client.post(f"/api/sessions/{sid}/members", json={"user": b.username})
    assert b.client.post(f"/api/invitations/{sid}/decline").json()["status"] == "declined"
    assert b.client.get("/api/invitations").json() == []
    assert b.client.get(f"/api/sessions/{sid}").status_code == 404
    members = owner.client.get(f"/api/sessions/{sid}/members").json()
    assert members["owner_username"] == owner.username
    assert {(m["username"], m["status"]) for m in members["members"]} == {
        (a.username, "accepted"), (b.username, "declined"),
    }  # fmt: skip
    # A declined invitation may be sent again.
    r = owner.client.post(f"/api/sessions/{sid}/members", json={"user": b.username})
    assert r.status_code == 201


def test_roles_change_and_revocation_apply_at_once(server: LiveServer, team: Team) -> None:
    sid, e = team.sid, team.editor
    url = f"/api/workspace/{sid}/file/main.py"
    assert e.client.post(url, json={"content": "a\n"}).status_code == 200
    r = team.owner.client.put(f"/api/sessions/{sid}/members/{e.user_id}", json={"role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer"
    # The cache TTL is 30 s here: the change itself invalidated it.
    assert e.client.post(url, json={"content": "b\n"}).status_code == 403
    assert team.owner.client.delete(f"/api/sessions/{sid}/members/{e.user_id}").status_code == 204
    assert e.client.get(url).status_code == 404
    assert e.client.get("/api/shared").json() == []


def test_admin_limits(server: LiveServer, team: Team) -> None:
    sid, adm = team.sid, team.admin.client
    extra = register_user(server, "ext")
    r = adm.post(f"/api/sessions/{sid}/members", json={"user": extra.username, "role": "admin"})
    assert r.status_code == 403 and r.json()["required_role"] == "owner"
    r = adm.post(f"/api/sessions/{sid}/members", json={"user": extra.username, "role": "editor"})
    assert r.status_code == 201
    r = adm.put(f"/api/sessions/{sid}/members/{team.viewer.user_id}", json={"role": "admin"})
    assert r.status_code == 403
    assert (
        adm.put(
            f"/api/sessions/{sid}/members/{team.viewer.user_id}", json={"role": "editor"}
        ).status_code
        == 200
    )
    # An admin cannot remove the owner's other admins, nor delete or transfer the session.
    other = register_user(server, "adm2")
    invite(team.owner, sid, other, "admin")
    other.client.post(f"/api/invitations/{sid}/accept")
    assert adm.delete(f"/api/sessions/{sid}/members/{other.user_id}").status_code == 403
    assert adm.delete(f"/api/sessions/{sid}").status_code == 403
    assert (
        adm.post(f"/api/sessions/{sid}/transfer", json={"user_id": team.admin.user_id}).status_code
        == 403
    )
    assert adm.delete(f"/api/sessions/{sid}/members/{team.viewer.user_id}").status_code == 204
    extra.client.close()
    other.client.close()


def test_transfer_ownership(server: LiveServer, team: Team) -> None:
    sid = team.sid
    r = team.owner.client.post(
        f"/api/sessions/{sid}/transfer", json={"user_id": team.pending.user_id}
    )
    assert (r.status_code, r.json()["error"]) == (409, "member_not_accepted")
    r = team.owner.client.post(
        f"/api/sessions/{sid}/transfer", json={"user_id": team.editor.user_id}
    )
    assert r.status_code == 200, r.text
    assert team.editor.client.get(f"/api/sessions/{sid}").json()["role"] == "owner"
    assert team.owner.client.get(f"/api/sessions/{sid}").json()["role"] == "admin"
    assert team.owner.client.delete(f"/api/sessions/{sid}").status_code == 403
    assert [s["uuid"] for s in team.editor.client.get("/api/sessions/").json()] == [sid]
    members = team.editor.client.get(f"/api/sessions/{sid}/members").json()
    assert members["owner_id"] == team.editor.user_id
    assert team.editor.user_id not in [m["user_id"] for m in members["members"]]


def test_leave_and_owner_delete(server: LiveServer, team: Team) -> None:
    sid = team.sid
    assert team.viewer.client.post(f"/api/sessions/{sid}/leave").status_code == 204
    assert team.viewer.client.get(f"/api/sessions/{sid}").status_code == 404
    assert team.owner.client.post(f"/api/sessions/{sid}/leave").status_code == 409
    assert team.owner.client.delete(f"/api/sessions/{sid}").status_code == 204
    assert team.editor.client.get("/api/shared").json() == []


# fork_policy -> the member roles that may fork (others get 403 forbidden_role naming it).
FORK_MATRIX = {
    "members": ("viewer", {"viewer", "editor", "admin", "owner"}),
    "editors": ("editor", {"editor", "admin", "owner"}),
    "owner": ("owner", {"owner"}),
}


def test_fork_policy_matrix(server: LiveServer, team: Team) -> None:
    """Every fork policy x every role: members at or above it fork (201, theirs); below it,
    403 ``forbidden_role`` with the role needed; non-members and pending invitees: 404."""
    sid = team.sid
    members = team.viewer.client.get(f"/api/sessions/{sid}/members").json()
    assert members["fork_policy"] == "editors"  # the default
    failures = []
    for policy, (need, allowed) in FORK_MATRIX.items():
        r = team.admin.client.put(f"/api/sessions/{sid}/fork-policy", json={"fork_policy": policy})
        assert r.status_code == 200 and r.json() == {"fork_policy": policy}, r.text
        for who, u in team.by_role().items():
            r = u.client.post(f"/api/sessions/{sid}/fork", json={"name": f"{policy}-{who}"})
            body = r.json()
            if who in ("none", "pending"):
                ok = (r.status_code, body.get("error")) == (404, "session_not_found")
            elif who in allowed:
                ok = r.status_code == 201 and body["role"] == "owner"
            else:
                ok = (r.status_code, body.get("error"), body.get("required_role")) == (
                    403, "forbidden_role", need,
                )  # fmt: skip
            if not ok:
                failures.append(f"{policy} {who}: {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)
    assert team.owner.client.get(f"/api/sessions/{sid}/members").json()["fork_policy"] == "owner"


def test_fork_policy_is_the_admins_to_set_and_checked(server: LiveServer, team: Team) -> None:
    sid = team.sid
    url = f"/api/sessions/{sid}/fork-policy"
    for u in (team.viewer, team.editor):
        r = u.client.put(url, json={"fork_policy": "members"})
        assert (r.status_code, r.json()["error"], r.json()["required_role"]) == (
            403, "forbidden_role", "admin",
        )  # fmt: skip
    assert team.stranger.client.put(url, json={"fork_policy": "members"}).status_code == 404
    for bad in ({"fork_policy": "everyone"}, {"fork_policy": 1}, {}):
        r = team.owner.client.put(url, json=bad)
        assert r.status_code == 422 and "error" in r.json(), r.text
    assert team.viewer.client.get(f"/api/sessions/{sid}/members").json()["fork_policy"] == "editors"
    assert team.owner.client.put(url, json={"fork_policy": "owner"}).status_code == 200
    # A public fork link is its own grant: a viewer below the policy forks through it.
    r = team.owner.client.post(f"/api/sessions/{sid}/links", json={"permission": "fork"})
    token = r.json()["token"]
    assert team.viewer.client.post(f"/api/sessions/{sid}/fork", json={}).status_code == 403
    r = team.viewer.client.post(f"/api/public/{token}/fork")
    assert r.status_code == 201, r.text
    r = team.stranger.client.post(f"/api/public/{token}/fork")
    assert r.status_code == 201, r.text


# --- public links -------------------------------------------------------------------------------


def test_public_link_read(server: LiveServer, team: Team) -> None:
    sid = team.sid
    r = team.admin.client.post(f"/api/sessions/{sid}/links", json={"permission": "read"})
    assert r.status_code == 201, r.text
    link = r.json()
    token = link["token"]
    assert link["url"] == f"/p/{token}" and len(token) >= 43
    anon = httpx.Client(base_url=server.base_url)
    page = anon.get(f"/api/public/{token}")
    assert page.status_code == 200, page.text
    assert page.json()["name"] == "shared" and [i["path"] for i in page.json()["items"]] == [
        "main.py"
    ]
    f = anon.get(f"/api/public/{token}/file/main.py").json()
    assert f["content"] == "print(1)\n"
    assert anon.get(f"/api/public/{token}/run").json()["status"] is None
    anon.get(f"/api/public/{token}")
    links = team.owner.client.get(f"/api/sessions/{sid}/links").json()
    assert links[0]["view_count"] == 2 and "token" not in links[0]  # file fetches do not count
    # A read link does not fork; revoked: 410.
    r = team.stranger.client.post(f"/api/public/{token}/fork")
    assert (r.status_code, r.json()["error"]) == (403, "link_read_only")
    assert team.owner.client.delete(f"/api/sessions/{sid}/links/{link['id']}").status_code == 204
    r = anon.get(f"/api/public/{token}")
    assert (r.status_code, r.json()["error"]) == (410, "link_revoked")
    assert anon.get(f"/api/public/{token}/file/main.py").status_code == 410
    anon.close()


def test_public_link_fork_expiry_and_unknown(server: LiveServer, team: Team) -> None:
    sid = team.sid
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    r = team.owner.client.post(
        f"/api/sessions/{sid}/links", json={"permission": "fork", "expires_at": soon}
    )
    token = r.json()["token"]
    anon = httpx.Client(base_url=server.base_url)
    assert anon.post(f"/api/public/{token}/fork").status_code == 401
    r = team.stranger.client.post(f"/api/public/{token}/fork")
    assert r.status_code == 201, r.text
    forked = r.json()["uuid"]
    files = team.stranger.client.get(f"/api/workspace/{forked}/files").json()["items"]
    assert [i["path"] for i in files] == ["main.py"]
    # The fork grant was for that request only: the stranger is still no member.
    assert team.stranger.client.post(f"/api/sessions/{sid}/fork", json={}).status_code == 404
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    r = team.owner.client.post(f"/api/sessions/{sid}/links", json={"expires_at": past})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_expiry")
    import time

    time.sleep(2.1)
    r = anon.get(f"/api/public/{token}")
    assert (r.status_code, r.json()["error"]) == (410, "link_expired")
    r = anon.get("/api/public/" + "A" * 43)
    assert (r.status_code, r.json()["error"]) == (404, "link_not_found")
    anon.close()


# --- who typed: the agent's report is untrusted ---------------------------------------------------


async def test_a_typist_the_agent_reports_is_kept_only_for_who_may_type(
    server: LiveServer, team: Team
) -> None:
    """An agent (inside the sandbox: untrusted) reports who typed a command (protocol 4); a
    forged report naming a viewer, a pending invitee or a stranger is recorded as nobody."""
    from sqlalchemy import select

    from coolcoding.db.engine import Database
    from coolcoding.db.models import CodeSession
    from coolcoding.services.commands import CommandLog, CommandRecord
    from coolcoding.services.sessions import parse_uuid

    db = Database(server.settings)
    try:
        async with db.session() as s:
            session_id = await s.scalar(
                select(CodeSession.id).where(CodeSession.uuid == parse_uuid(team.sid))
            )
        assert session_id is not None
        log = CommandLog(db)
        expect = {"owner": True, "admin": True, "editor": True, "viewer": False,
                  "pending": False, "none": False}  # fmt: skip
        for who, u in team.by_role().items():
            rec = CommandRecord(
                terminal_id="t1", command=f"echo {who}", exit_code=0, cwd=None,
                started_at=datetime.now(UTC), duration_ms=1.0, output="", output_truncated=False,
                user_id=u.user_id, typist_reported=True,
            )  # fmt: skip
            await log.record(session_id, rec)
        got = {r.command: r.user_id for r in await log.recent(session_id)}
        by_role = team.by_role()
        for who, kept in expect.items():
            assert got[f"echo {who}"] == (by_role[who].user_id if kept else None), who
    finally:
        await db.dispose()
