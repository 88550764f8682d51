"""The co-editing pieces that need no server: frames, the minimal diff, external merges, limits."""

from __future__ import annotations

import random

import pytest
from pycrdt import Doc, Text, YMessageType, YSyncMessageType

from coolcoding.collab.document import (
    SharedDoc,
    UpdateRefused,
    initial_base,
    merge_external,
)
from coolcoding.collab.protocol import FrameError, awareness_frame, parse_frame, sync_frame
from coolcoding.collab.rooms import awareness_client_ids
from coolcoding.collab.textdiff import apply, edits


def test_frames_round_trip_and_garbage_is_refused() -> None:
    f = parse_frame(sync_frame("a/b.py", YSyncMessageType.SYNC_UPDATE, b"\x01\x02"))
    assert (f.path, f.kind, f.sync_kind, f.payload) == (
        "a/b.py",
        YMessageType.SYNC,
        YSyncMessageType.SYNC_UPDATE,
        b"\x01\x02",
    )
    assert parse_frame(awareness_frame("", b"x")).kind == YMessageType.AWARENESS
    for bad in (b"", b"\xff\xff\xff", b"\x01a\x07\x00", b"\x01a\x00\x09\x00", b"\x01a\x01\x05ab"):
        with pytest.raises(FrameError):
            parse_frame(bad)
    with pytest.raises(FrameError):
        parse_frame(sync_frame("x", 2, b"ok") + b"trailing")


def test_the_diff_is_minimal_and_exact() -> None:
    rng = random.Random(1)
    for _ in range(500):
        a = "".join(rng.choice("ab\nc😀") for _ in range(rng.randint(0, 40)))
        b = "".join(rng.choice("ab\nc😀") for _ in range(rng.randint(0, 40)))
        assert apply(a, edits(a, b)) == b
    # One changed word in a long text is one small edit, not a replacement.
    old = "x = 1\n" * 1000
    new = old.replace("x = 1\n", "x = 2\n", 1)
    script = edits(old, new)
    assert sum(n + len(t) for _, n, t in script) <= 2


def _client(state: bytes) -> Doc[Text]:
    d: Doc[Text] = Doc()
    d.apply_update(state)
    return d


def test_an_external_change_merges_with_concurrent_edits_and_multibyte_text() -> None:
    base = initial_base("s", "p", 3, "héllo 😀 world\nsecond line\n")
    doc = SharedDoc(base, max_update_bytes=10_000, max_doc_bytes=10_000)
    # An editor types at the start (not yet saved)...
    c = _client(base.state)
    sv = c.get_state()
    c.get("content", type=Text).insert(0, "# ")
    assert doc.apply(c.get_update(sv))
    # ...while the terminal changes the second line of the saved text.
    update, new_base = merge_external(base, "héllo 😀 world\nSECOND line\n", 4)
    doc.apply_trusted(update)
    assert doc.content() == "# héllo 😀 world\nSECOND line\n"
    assert (new_base.version, new_base.text) == (4, "héllo 😀 world\nSECOND line\n")
    # The editor's copy gets the same text from the same update.
    c.apply_update(update)
    assert str(c.get("content", type=Text)) == doc.content()


def test_two_replicas_loading_the_same_version_make_the_same_items() -> None:
    a = initial_base("s", "p", 7, "same text")
    b = initial_base("s", "p", 7, "same text")
    d: Doc[Text] = Doc()
    d.apply_update(a.state)
    d.apply_update(b.state)
    assert str(d.get("content", type=Text)) == "same text"  # not twice


def test_refused_updates_leave_the_document_intact() -> None:
    base = initial_base("s", "p", 1, "safe")
    doc = SharedDoc(base, max_update_bytes=200, max_doc_bytes=100)
    for bad, code in ((b"\x05\xff\xffjunk", "malformed_update"), (b"z" * 300, "update_too_large")):
        with pytest.raises(UpdateRefused) as exc:
            doc.apply(bad)
        assert exc.value.code == code
    c = _client(base.state)
    sv = c.get_state()
    c.get("content", type=Text).insert(0, "y" * 150)
    with pytest.raises(UpdateRefused) as exc:
        doc.apply(c.get_update(sv))
    assert exc.value.code == "document_too_large"
    assert doc.content() == "safe"


def test_a_viewer_echo_changes_nothing_but_an_edit_would() -> None:
    base = initial_base("s", "p", 1, "abc")
    doc = SharedDoc(base, max_update_bytes=10_000, max_doc_bytes=10_000)
    viewer = _client(doc.doc.get_update())
    assert not doc.would_change(viewer.get_update(doc.state_vector()))
    assert not doc.would_change(viewer.get_update())
    sv = viewer.get_state()
    del viewer.get("content", type=Text)[0:1]
    assert doc.would_change(viewer.get_update(sv))


def test_awareness_client_ids_are_parsed_and_truncation_refused() -> None:
    from pycrdt import Awareness

    aw = Awareness(Doc())
    aw.set_local_state({"user": {"name": "ann"}})
    upd = aw.encode_awareness_update([aw.client_id])
    assert awareness_client_ids(upd) == [aw.client_id]
    with pytest.raises(FrameError):
        awareness_client_ids(upd[:-3])
