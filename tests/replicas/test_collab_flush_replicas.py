"""Co-editing ``flush`` across two real replicas (PostgreSQL, Redis): a client on the replica that
does not hold the document's saver lease types and flushes at once; the saver on the other
replica saves what it typed and the answer comes back through the event bus. The save debounce
is a minute here, so only the flush can have saved. A failed save (over the quota) on the saver
reaches the client on the other replica too."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import httpx
import pytest

from tests.collab_client import CollabClient
from tests.replicas.conftest import Cluster, User, make_cluster, new_session, register

PATH = "run_me.py"


@pytest.fixture(scope="module")
def cluster2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {
        "COOLCODING_COLLAB_SAVE_DEBOUNCE_MS": "60000",
        "COOLCODING_MAX_WORKSPACE_BYTES": "20000",
    }
    with make_cluster(tmp_path_factory, n=2, extra_env=env) as c:
        yield c


def db(base_url: str, user: User, sid: str) -> tuple[str, int]:
    with user.client(base_url) as c:
        r = c.get(f"/api/workspace/{sid}/file/{PATH}")
        assert r.status_code == 200, r.text
        return str(r.json()["content"]), int(r.json()["version"])


async def test_a_flush_on_the_other_replica_saves_through_the_saver(cluster2: Cluster) -> None:
    r0, r1 = cluster2.replicas
    user = register(cluster2.lb_url)
    sid = new_session(cluster2.lb_url, user)
    with user.client(cluster2.lb_url) as c:
        r = c.post(f"/api/workspace/{sid}/file/{PATH}", json={"content": "print(1)\n"})
        assert r.status_code in (200, 201), r.text
    saver = CollabClient(f"{r0.ws_url}/api/sessions/{sid}/collab", user.token)
    typist = CollabClient(f"{r1.ws_url}/api/sessions/{sid}/collab", user.token)
    await saver.connect()
    await saver.join(PATH)  # r0 opens the document first: it holds the saver lease
    await typist.connect()
    await typist.join(PATH)
    try:
        for i in range(3):
            await typist.edit(PATH, lambda t, i=i: t.insert(len(t), f"print('last {i}')\n"))
            answer = await typist.flush(PATH)
            assert answer["ok"] is True, answer
            text, version = db(cluster2.lb_url, user, sid)
            assert text == typist.text(PATH), (text, typist.text(PATH))
            assert text.endswith(f"print('last {i}')\n")
            assert answer["version"] == version
            raw = text.encode()
            # The saver's acknowledgement reaches the client on the other replica.
            await typist.wait_for(
                lambda v=version, raw=raw: any(
                    m["type"] == "saved"
                    and m["version"] == v
                    and (m["bytes"], m["crc32"]) == (len(raw), zlib.crc32(raw))
                    for m in typist.messages
                )
            )
        # A failed save on the saver replica is reported to the client on this one.
        await typist.edit(PATH, lambda t: t.insert(len(t), "#" * 30_000))
        failed = await typist.flush(PATH)
        assert failed["ok"] is False and "quota" in str(failed["message"]), failed
        await typist.wait_for(
            lambda: any(m.get("error") == "save_failed" for m in typist.errors), timeout=10
        )
        assert not db(cluster2.lb_url, user, sid)[0].endswith("#")
    finally:
        await saver.close()
        await typist.close()


def test_both_replicas_answer(cluster2: Cluster) -> None:
    for r in cluster2.replicas:
        assert httpx.get(f"{r.url}/api/health/", timeout=5).status_code == 200
