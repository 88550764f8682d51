"""Finding 13 (part): a file whose name is not valid UTF-8, made in the sandbox, used to close the
events WebSocket with no ``sync_error``. It is skipped, the socket stays open, and the user is told
(the name shown escaped)."""

from __future__ import annotations

import pytest

from tests.conftest import (
    LiveServer,
    UserClient,
    module_live_server,
)
from tests.sandbox_helpers import Term, events_socket, file_items, next_event

pytestmark = pytest.mark.sandbox


server = module_live_server("badname")


async def test_invalid_utf8_name_is_reported_and_the_events_socket_stays_open(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    ev = await events_socket(server, user, sid)
    t = await Term.open(server, user, sid)
    msg, out = await t.run(r"echo x > $'bad\xff.txt' && mkdir $'dir\xfe' && echo y > ok.txt")
    assert msg["exit_code"] == 0, out
    err = await next_event(ev, lambda e: e["type"] == "sync_error")
    assert err["error"] == "invalid_path"
    assert "\\xff" in err["path"] or "\\xfe" in err["path"], err
    assert "UTF-8" in err["message"]
    # The socket is still open: a later change still arrives.
    await t.run("echo later > later.txt")
    got = await next_event(ev, lambda e: e["type"] == "file_changed" and e["path"] == "later.txt")
    assert got["source"] == "sandbox"
    items = file_items(user, sid)
    assert {"ok.txt", "later.txt"} <= set(items)
    assert all(p.isprintable() and "\\" not in p for p in items), list(items)
    await t.close()
    await ev.close()
