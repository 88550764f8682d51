"""Who typed a command, when the keystrokes reach the sandbox through another replica than the
one that records it (the lease holder): two users, two replicas behind a real nginx, a real
PostgreSQL and Redis. The forwarding replica names the typist to the agent (protocol 4), the
agent reports it with the command, so the recording replica gets it right."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.replicas.conftest import (
    Cluster,
    Replica,
    User,
    make_cluster,
    open_terminal,
    register_as,
    upstream_of,
)
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with make_cluster(tmp_path_factory, n=2) as c:
        yield c


@dataclass
class Named:
    user: User
    name: str
    user_id: int


def register_named(base_url: str) -> Named:
    name = f"typ{secrets.token_hex(5)}"
    user = register_as(base_url, name)
    with user.client(base_url) as c:
        me = c.get("/api/users/me")
        assert me.status_code == 200, me.text
        return Named(user, name, int(me.json()["id"]))


async def terminal_through(
    cluster: Cluster, u: User, sid: str, want: Replica | None, avoid: Replica | None
) -> Term:
    """A terminal WebSocket that nginx (round robin) sent to ``want`` / not to ``avoid``."""
    for _ in range(12):
        term = await open_terminal(cluster.lb_ws_url, u, sid)
        got = upstream_of(term, cluster)
        if (want is None or got is want) and (avoid is None or got is not avoid):
            return term
        await term.close()
    raise AssertionError("nginx never chose the wanted replica")


async def run(term: Term, command: str) -> None:
    """Type ``command`` + Enter; wait for its own record (the terminal is shared: others' come
    too)."""
    await term.ws.send((command + "\r").encode())
    msg = await term.recv_until(
        lambda m: m is not None and m["type"] == "command" and m["command"] == command
    )
    assert msg is not None


async def test_a_command_typed_through_another_replica_names_its_typist(pair: Cluster) -> None:
    a, b = register_named(pair.lb_url), register_named(pair.lb_url)
    with a.user.client(pair.lb_url) as ca, b.user.client(pair.lb_url) as cb:
        sid = ca.post("/api/sessions/", json={"name": "typists"}).json()["uuid"]
        r = ca.post(f"/api/sessions/{sid}/members", json={"user": b.name, "role": "editor"})
        assert r.status_code == 201, r.text
        assert cb.post(f"/api/invitations/{sid}/accept").status_code == 200
        mine = await open_terminal(pair.lb_ws_url, a.user, sid)  # starts the sandbox
        holder = await pair.lease_holder(sid)
        assert holder is not None
        if upstream_of(mine, pair) is not holder:
            await mine.close()
            mine = await terminal_through(pair, a.user, sid, holder, None)
        theirs = await terminal_through(pair, b.user, sid, None, holder)
        assert upstream_of(theirs, pair) is not holder and upstream_of(mine, pair) is holder
        await run(theirs, "echo typed-by-b")
        await run(mine, "echo typed-by-a")
        assert await pair.lease_holder(sid) is holder  # the holder recorded both
        cmds = cb.get(f"/api/sessions/{sid}/commands").json()
        assert [(c["command"], c["user_id"]) for c in cmds] == [
            ("echo typed-by-a", a.user_id),
            ("echo typed-by-b", b.user_id),
        ]
        await theirs.close()
        await mine.close()
