"""Fault: the co-editing saver is SIGKILLed between saving the document to the DB and recording
that saved base in Redis (real replicas, PostgreSQL, Redis, nginx). The replica that takes the
saver lease over finds the DB one version ahead of the base in Redis; no edit may be lost or
duplicated, and the DB must end equal to the document every client has.

The kill point is exact: the victim replica runs with ``COOLCODING_COLLAB_TEST_HOLD_AFTER_SAVE``
(refused outside ``COOLCODING_ENVIRONMENT=test``), which makes its saver write a marker file right
after ``save_file`` returned and then wait there; the test SIGKILLs it once the marker exists."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.collab_client import CollabClient
from tests.replicas.conftest import Cluster, make_cluster, new_session, register
from tests.replicas.test_collab_replicas import PATH, db_text, eventually, fresh_copy, put

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with make_cluster(tmp_path_factory, n=2) as c:
        yield c


async def test_saver_killed_between_the_db_save_and_the_redis_base(pair: Cluster) -> None:
    victim, survivor = pair.replicas
    marker = victim.data_dir / "held-after-save"
    victim.stop()
    victim.env = {**victim.env, "COOLCODING_COLLAB_TEST_HOLD_AFTER_SAVE": str(marker)}
    victim.start()
    user = register(pair.lb_url)
    sid = new_session(pair.lb_url, user)
    put(pair.lb_url, user, sid, "base\n")
    url = "{}/api/sessions/" + sid + "/collab"
    a = CollabClient(url.format(victim.ws_url), user.token)
    b = CollabClient(url.format(survivor.ws_url), user.token)
    await a.connect()
    await a.join(PATH)  # the victim opens it first: it holds the saver lease
    await b.connect()
    await b.join(PATH)
    words: list[str] = []
    try:
        for i in range(5):
            words.append(f"<a{i}>")
            await a.edit(PATH, lambda t, w=words[-1]: t.insert(len(t), w))
        await eventually(marker.exists)  # in the DB, not yet in Redis: the saver waits there
        saved = db_text(pair.lb_url, user, sid)
        assert saved != "base\n" and saved.startswith("base\n"), saved
        await eventually(lambda: b.text(PATH) == a.text(PATH))
        for i in range(3):  # the survivor's copy moves on past what was saved
            words.append(f"<b{i}>")
            await b.edit(PATH, lambda t, w=words[-1]: t.insert(0, w))
        victim.kill()
        a.url = url.format(survivor.ws_url)
        await a.reconnect()
        for i in range(3):  # edits after the takeover, from both
            words += [f"<c{i}>", f"<d{i}>"]
            await a.edit(PATH, lambda t, w=words[-2]: t.insert(len(t), w))
            await b.edit(PATH, lambda t, w=words[-1]: t.insert(0, w))
        await eventually(lambda: a.text(PATH) == b.text(PATH), timeout=40)
        final = a.text(PATH)
        assert final.count("base\n") == 1, final
        for w in words:
            assert final.count(w) == 1, (w, final)
        seen: list[str] = []
        with contextlib.suppress(AssertionError):
            await eventually(
                lambda: seen.append(db_text(pair.lb_url, user, sid)) or seen[-1] == final, 40
            )
        assert seen[-1] == final, f"DB {seen[-1]!r} != document {final!r}"
        assert await fresh_copy(survivor.ws_url, user, sid) == final
        assert db_text(pair.lb_url, user, sid) == a.text(PATH) == b.text(PATH)
    finally:
        await a.close()
        await b.close()
