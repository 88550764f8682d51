"""Live co-editing through one real server (both databases): pycrdt clients over real WebSockets,
the document saved to the file, outside writes merged into open documents, limits."""

from __future__ import annotations

import asyncio
import random

import pytest
from pycrdt import Doc, Map, Text, YSyncMessageType

from coolcoding.collab.protocol import sync_frame
from tests.conftest import LiveServer, UserClient, module_live_server, register_user
from tests.integration.collab_user import add_member, client, db_text, put
from tests.sandbox_helpers import Term

server = module_live_server(
    "collab",
    collab_max_update_bytes=64 * 1024,
    collab_max_doc_bytes=100_000,
    collab_save_debounce_ms=100,
)


async def eventually(pred: object, timeout: float = 20) -> None:
    assert callable(pred)
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_two_editors_typing_in_the_same_spot_converge_in_clients_and_db(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "main.py", "print('hi')\n")
    a, b = await client(server, user, sid), await client(server, user, sid)
    try:
        await a.join("main.py")
        await b.join("main.py")
        assert a.text("main.py") == b.text("main.py") == "print('hi')\n"
        rng = random.Random(7)
        for i in range(150):
            for c, ch in ((a, "a"), (b, "b")):
                await c.edit("main.py", lambda t, ch=ch: t.insert(6, ch))
                if i % 7 == 3:
                    await c.edit("main.py", lambda t: t.__delitem__(slice(6, 7)))
            if rng.random() < 0.1:
                await asyncio.sleep(0.01)
        await eventually(lambda: a.text("main.py") == b.text("main.py"))
        final = a.text("main.py")
        # 300 letters typed, 42 deletes of the letter after "(" (two concurrent deletes of the
        # same letter remove it once).
        assert final.startswith("print(") and final.endswith("'hi')\n")
        assert 300 - 42 <= final.count("a") + final.count("b") <= 300 - 21
        await eventually(lambda: db_text(user, sid, "main.py") == final)
    finally:
        await a.close()
        await b.close()


async def test_an_outside_write_is_merged_into_the_open_document_keeping_concurrent_edits(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "a.txt", "line one\nline two\nline three\n")
    a = await client(server, user, sid)
    try:
        await a.join("a.txt")
        await eventually(lambda: db_text(user, sid, "a.txt") == a.text("a.txt"))
        version = user.client.get(f"/api/workspace/{sid}/file/a.txt").json()["version"]
        # An upload/restore-like write through the API, based on the saved version...
        put(user, sid, "a.txt", "line one\nline TWO\nline three\n", base_version=version)
        await eventually(lambda: a.text("a.txt") == "line one\nline TWO\nline three\n")
        # ...and one that races an unsaved edit in the editor: both survive.
        await a.edit("a.txt", lambda t: t.insert(0, "# top\n"))
        cur = user.client.get(f"/api/workspace/{sid}/file/a.txt").json()
        if cur["content"] == "line one\nline TWO\nline three\n":
            put(user, sid, "a.txt", "line one\nline TWO\nline 3\n", base_version=cur["version"])
        else:  # the edit was saved first: write on top of it
            put(
                user,
                sid,
                "a.txt",
                "# top\nline one\nline TWO\nline 3\n",
                base_version=cur["version"],
            )
        want = "# top\nline one\nline TWO\nline 3\n"
        await eventually(lambda: a.text("a.txt") == want)
        await eventually(lambda: db_text(user, sid, "a.txt") == want)
    finally:
        await a.close()


async def test_malformed_and_oversized_updates_are_refused_and_the_document_is_intact(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "x.txt", "safe\n")
    a, b = await client(server, user, sid), await client(server, user, sid)
    try:
        await a.join("x.txt")
        await b.join("x.txt")
        # Not a Yjs update at all.
        await a.send_update("x.txt", b"\x05\xff\xff\xffgarbage")
        # A frame that is not a frame.
        await a.send_raw(b"\xff\xff\xff")
        # Too large for one update (64 KiB here).
        big = Doc()
        big.apply_update(a.docs["x.txt"].get_update())
        sv = big.get_state()
        big.get("content", type=Text).insert(0, "z" * 70_000)
        await a.send_update("x.txt", big.get_update(sv))
        # Small enough per update, but the document would pass its limit (100,000 bytes).
        for _ in range(2):
            grow = Doc()
            grow.apply_update(a.docs["x.txt"].get_update())
            sv = grow.get_state()
            grow.get("content", type=Text).insert(0, "y" * 60_000)
            upd = grow.get_update(sv)
            await a.send_update("x.txt", upd)
            a.docs["x.txt"].apply_update(upd)
        # Another shared type than the file's text.
        other = Doc()
        other.get("evil", type=Map)["k"] = "v"
        await a.ws.send(sync_frame("x.txt", YSyncMessageType.SYNC_UPDATE, other.get_update()))
        # A document the client never joined.
        await a.send_update("nope.txt", b"\x00\x00")
        await eventually(lambda: len(a.errors) >= 6)
        codes = [e["error"] for e in a.errors]
        assert codes.count("malformed_update") == 3, codes
        assert "update_too_large" in codes and "not_joined" in codes, codes
        assert "document_too_large" in codes, codes
        assert all(e["message"] for e in a.errors)
        # The first 60,000 went in, the second was refused; b never saw anything else, and a
        # normal edit still works.
        await b.edit("x.txt", lambda t: t.insert(len(t), "ok\n"))
        # (b's own edit is there at once; the 60,000 may still be on their way.)
        await eventually(lambda: b.text("x.txt") == "y" * 60_000 + "safe\nok\n")
        await eventually(lambda: db_text(user, sid, "x.txt") == b.text("x.txt"))
        assert b.errors == []
    finally:
        await a.close()
        await b.close()


async def test_binary_and_too_large_files_cannot_be_co_edited(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "img.bin", "AAEC/w==", encoding="base64")
    put(user, sid, "big.txt", "x" * 150_000)
    a = await client(server, user, sid)
    try:
        for path, code in (
            ("img.bin", "binary_file"),
            ("big.txt", "file_too_large"),
            ("missing.txt", "file_not_found"),
        ):
            await a.join(path)
            err = a.errors[-1]
            assert (err["path"], err["error"]) == (path, code), err
            assert err["message"]
    finally:
        await a.close()


async def test_the_last_editor_leaving_saves_and_a_delete_closes_the_document(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "l.txt", "")
    a = await client(server, user, sid)
    await a.join("l.txt")
    await a.edit("l.txt", lambda t: t.insert(0, "typed then left"))
    await a.leave("l.txt")
    await eventually(lambda: db_text(user, sid, "l.txt") == "typed then left")
    await a.join("l.txt")
    assert a.text("l.txt") == "typed then left"
    assert user.client.delete(f"/api/workspace/{sid}/file/l.txt").status_code == 204
    await eventually(
        lambda: any(m["type"] == "closed" and m["reason"] == "file_deleted" for m in a.messages)
    )
    await a.close()


async def test_presence_and_cursors_reach_the_others_and_nobody_can_speak_for_another(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "p.txt", "abc")
    a, b = await client(server, user, sid), await client(server, user, sid)
    try:
        await eventually(lambda: a.hello is not None and b.hello is not None)
        assert a.hello is not None
        me = a.hello["user"]["name"]
        assert me == user.username
        await a.set_presence({"user": {"name": me}, "file": "p.txt"})
        await eventually(
            lambda: any(
                s.get("file") == "p.txt" for s in b.awareness.get("", _NoAw()).states.values()
            )
        )
        assert a.hello is not None and a.hello["writable"] is True
        # b forges an update for a's awareness client id: refused.
        a_id = a.awareness[""].client_id
        forged = Doc()
        from pycrdt import Awareness

        aw = Awareness(forged)
        aw.client_id = a_id
        aw._meta[a_id] = {"clock": 99, "lastUpdated": 0}
        aw._states[a_id] = {"user": {"name": me}, "file": "forged.txt"}
        await b.ws.send(
            __import__("coolcoding.collab.protocol", fromlist=["x"]).awareness_frame(
                "", aw.encode_awareness_update([a_id])
            )
        )
        await eventually(lambda: any(e["error"] == "malformed_awareness" for e in b.errors))
        assert b.awareness[""].states[a_id]["file"] == "p.txt"
        # b labels its own cursor with another person's name: refused too (impersonation).
        errors = len(b.errors)
        await b.set_presence({"user": {"name": "the-teacher"}, "file": "p.txt"})
        await eventually(lambda: len(b.errors) > errors)
        assert b.errors[-1]["error"] == "malformed_awareness"
        assert not any(
            s.get("user", {}).get("name") == "the-teacher" for s in a.awareness[""].states.values()
        )
        # a leaves: b sees a's presence removed.
        await a.close()
        await eventually(lambda: a_id not in b.awareness[""].states)
    finally:
        await b.close()


class _NoAw:
    states: dict[int, dict[str, object]] = {}


@pytest.mark.sandbox
async def test_a_terminal_write_reaches_the_open_document(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    put(user, sid, "t.txt", "from the editor\n")
    a = await client(server, user, sid)
    term = await Term.open(server, user, sid)
    try:
        await a.join("t.txt")
        await a.edit("t.txt", lambda t: t.insert(0, "> "))
        await eventually(lambda: db_text(user, sid, "t.txt") == "> from the editor\n")
        await asyncio.sleep(0.5)  # the sandbox has the saved file
        await term.run("echo from the terminal >> t.txt")
        want = "> from the editor\nfrom the terminal\n"
        await eventually(lambda: a.text("t.txt") == want)
        await eventually(lambda: db_text(user, sid, "t.txt") == want)
    finally:
        await term.close()
        await a.close()


async def test_a_viewer_sees_edits_but_its_updates_are_refused_and_revocation_closes(
    server: LiveServer, user: UserClient
) -> None:
    """A member with the viewer role gets a read-only connection (its updates are refused with
    ``read_only`` and change nothing); revoking it closes its socket (4403) at once."""
    member = register_user(server, "vie")
    sid = user.new_session()
    put(user, sid, "v.txt", "shared\n")
    add_member(user, sid, member, "viewer")
    editor = await client(server, user, sid)
    viewer = await client(server, member, sid)
    try:
        await editor.join("v.txt")
        await viewer.join("v.txt")
        assert viewer.hello is not None and viewer.hello["writable"] is False
        await viewer.edit("v.txt", lambda t: t.insert(0, "vandal "))
        await eventually(lambda: any(e["error"] == "read_only" for e in viewer.errors))
        await editor.edit("v.txt", lambda t: t.insert(len(t), "ok\n"))
        await eventually(lambda: db_text(user, sid, "v.txt") == "shared\nok\n")
        assert editor.text("v.txt") == "shared\nok\n"
        assert viewer.text("v.txt").endswith("shared\nok\n")  # it still sees the edits
        hist = user.client.get(f"/api/workspace/{sid}/history", params={"path": "v.txt"}).json()
        assert hist["versions"][0]["author_id"] == user.user_id  # the co-editor is the author
        members = user.client.get(f"/api/sessions/{sid}/members").json()
        rows = members["members"] if isinstance(members, dict) else members
        uid = next(m["user_id"] for m in rows if m["username"] == member.username)
        r = user.client.delete(f"/api/sessions/{sid}/members/{uid}")
        assert r.status_code == 204, r.text
        await asyncio.wait_for(viewer.ws.wait_closed(), 2.0)
        assert viewer.ws.close_code == 4403
    finally:
        await editor.close()
        await viewer.close()
