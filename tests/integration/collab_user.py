"""What a logged-in test user does around co-editing on a live server: write a file through the
REST API, read what the database holds, open a co-editing WebSocket (joined to some files)."""

from __future__ import annotations

from typing import Any

from tests.collab_client import CollabClient
from tests.conftest import LiveServer, UserClient


def put(user: UserClient, sid: str, path: str, content: str, **kw: object) -> dict[str, Any]:
    r = user.client.post(f"/api/workspace/{sid}/file/{path}", json={"content": content, **kw})
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def db(user: UserClient, sid: str, path: str) -> tuple[str, int]:
    """The file's content and version as the database holds them."""
    r = user.client.get(f"/api/workspace/{sid}/file/{path}")
    assert r.status_code == 200, r.text
    return str(r.json()["content"]), int(r.json()["version"])


def db_text(user: UserClient, sid: str, path: str) -> str:
    return db(user, sid, path)[0]


async def client(server: LiveServer, user: UserClient, sid: str, *join: str) -> CollabClient:
    """A connected co-editing client of ``user``, joined to the files ``join`` in order."""
    c = CollabClient(f"{server.ws_url}/api/sessions/{sid}/collab", user.token)
    await c.connect()
    for path in join:
        await c.join(path)
    return c


def add_member(user: UserClient, sid: str, member: UserClient, role: str) -> None:
    """``user`` invites ``member`` to the session with ``role``; the member accepts."""
    r = user.client.post(
        f"/api/sessions/{sid}/members", json={"user": member.username, "role": role}
    )
    assert r.status_code == 201, r.text
    assert member.client.post(f"/api/invitations/{sid}/accept").status_code == 200
