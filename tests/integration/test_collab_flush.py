"""Co-editing ``flush`` (Run saves first) and the ``saved`` acknowledgements through one real
server (both databases). The save debounce is long here, so only the flush can have saved."""

from __future__ import annotations

import zlib

from tests.collab_client import CollabClient
from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.collab_user import add_member, client, db, put

server = module_live_server(
    "collabflush",
    collab_save_debounce_ms=60_000,
    max_workspace_bytes=20_000,
)


def saved_marks(c: CollabClient, path: str) -> list[dict[str, object]]:
    return [m for m in c.messages if m["type"] == "saved" and m["path"] == path]


def mark_of(text: str) -> tuple[int, int]:
    raw = text.encode()
    return len(raw), zlib.crc32(raw)


async def test_flush_saves_at_once_and_acknowledges_what_it_saved(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "main.py", "print(1)\n")
    a = await client(server, user, sid, "main.py")
    b = await client(server, user, sid, "main.py")
    try:
        # On join: what the DB holds.
        first = saved_marks(a, "main.py")[-1]
        assert (first["bytes"], first["crc32"]) == mark_of("print(1)\n")
        await a.edit("main.py", lambda t: t.insert(len(t), "print('é', 2)\n"))
        answer = await a.flush("main.py")
        assert answer["ok"] is True
        text, version = db(user, sid, "main.py")
        assert text == "print(1)\nprint('é', 2)\n"
        assert answer["version"] == version
        # Every client hears that the DB now holds this text (its save indicator turns "saved").
        await b.wait_for(
            lambda: any(
                (m["bytes"], m["crc32"]) == mark_of(text) and m["version"] == version
                for m in saved_marks(b, "main.py")
            )
        )
        # Nothing new: a flush answers with the same version, no new save.
        again = await a.flush("main.py")
        assert again == {**answer, "id": again["id"]}
        assert db(user, sid, "main.py")[1] == version
    finally:
        await a.close()
        await b.close()


async def test_a_failed_save_is_reported_and_the_edits_stay(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "big.txt", "start\n")
    a = await client(server, user, sid, "big.txt")
    try:
        await a.edit("big.txt", lambda t: t.insert(len(t), "x" * 30_000))  # over the quota
        answer = await a.flush("big.txt")
        assert answer["ok"] is False
        assert "quota" in str(answer["message"])
        assert any(
            m["type"] == "error" and m["error"] == "save_failed" and m["path"] == "big.txt"
            for m in a.messages
        )
        assert db(user, sid, "big.txt")[0] == "start\n"
        assert a.text("big.txt") == "start\n" + "x" * 30_000  # not lost
        # Back under the quota: the next flush saves.
        await a.edit("big.txt", lambda t: t.__delitem__(slice(6, 30_006)))
        await a.edit("big.txt", lambda t: t.insert(len(t), "done\n"))
        ok = await a.flush("big.txt")
        assert ok["ok"] is True
        assert db(user, sid, "big.txt")[0] == "start\ndone\n"
    finally:
        await a.close()


async def test_a_viewer_cannot_flush_and_an_unjoined_or_bad_flush_is_refused(
    server: LiveServer, user: UserClient
) -> None:
    member = register_user(server, "flv")
    sid = user.new_session()
    put(user, sid, "main.py", "x\n")
    add_member(user, sid, member, "viewer")
    a = await client(server, user, sid)
    v = await client(server, member, sid)
    try:
        await a.ws.send('{"type": "flush", "path": "main.py", "id": 1}')
        await a.wait_for(lambda: any(m.get("error") == "not_joined" for m in a.errors))
        await a.ws.send('{"type": "flush", "path": "main.py", "id": -1}')
        await a.wait_for(lambda: any(m.get("error") == "bad_message" for m in a.errors))
        await v.join("main.py")
        await v.ws.send('{"type": "flush", "path": "main.py", "id": 2}')
        await v.wait_for(lambda: any(m.get("error") == "read_only" for m in v.errors))
        assert not any(m["type"] == "flushed" for m in a.messages + v.messages)
    finally:
        await a.close()
        await v.close()
        member.client.close()
