"""Lease takeover, byte for byte (issue 14): the replica holding a session's lease is killed
(SIGKILL) during a burst of 1,000 file changes made in the terminal; another replica takes the
session over (the sandbox keeps running: it outlives its replica) and reconciles by content hash.
Once the burst is over, the DB equals the sandbox: every file's content hash through the API is
the sha256 of the file in the sandbox (``sha256sum`` run in its terminal), and nothing is missing
or extra on either side.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx

from tests.replicas.conftest import (
    LEASE_TTL_S,
    Cluster,
    new_session,
    open_terminal,
    register,
)
from tests.replicas.test_replicas import WAIT_S, poll
from tests.sandbox_helpers import Term

BURST = 1000
# A line of ``sha256sum`` output (the first one follows the shell's "\x1b[?2004l\r").
LISTING = re.compile(rb"(?:^|\r)([0-9a-f]{64})  \./([^\r\n]+)", re.M)


async def sandbox_hashes(term: Term) -> dict[str, str]:
    """Every regular file of the workspace with its sha256, as the sandbox sees it (waited for
    by its output's end marker, not by a command record: the burst's own record may still be
    on its way)."""
    start = len(term.output)
    await term.ws.send(
        b"find . -type f -print0 | sort -z | xargs -0 -r sha256sum > /tmp/listing; "
        b"cat /tmp/listing; echo listing-$((20+22))-end\r"
    )
    await term.wait_output(b"listing-42-end\r", timeout=60)
    out = bytes(term.output[start:])
    found = {m[2].decode(): m[1].decode() for m in LISTING.finditer(out)}
    lines = out.count(b"  ./")
    assert len(found) == lines, (len(found), lines)
    return found


def db_hashes(c: httpx.Client, sid: str) -> dict[str, str]:
    r = c.get(f"/api/workspace/{sid}/files")
    assert r.status_code == 200, r.text
    return {i["path"]: i["content_hash"] for i in r.json()["items"] if i["type"] == "file"}


async def test_the_db_equals_the_sandbox_after_the_holder_dies_during_a_burst(
    cluster: Cluster,
) -> None:
    holder, taker, _ = cluster.replicas
    user = register(cluster.lb_url)
    sid = new_session(cluster.lb_url, user)
    term = await open_terminal(holder.ws_url, user, sid)
    later: Term | None = None
    try:
        await term.run("mkdir burst")
        # Each file is written twice (created, then rewritten with its number), so a sync in
        # between sees an intermediate content that must not survive; pauses stretch the burst
        # over ~8 s, past the lease TTL, so the takeover's reconciliation races it.
        await term.ws.send(
            f"for i in $(seq {BURST}); do echo x > burst/f$i; echo $i > burst/f$i; "
            "if (( i % 50 == 0 )); then sleep 0.4; fi; done; "
            "echo burst-$((400+600))-over\r".encode()
        )
        with user.client(taker.url) as c:

            def syncing() -> bool:
                return any(p.startswith("burst/f") for p in db_hashes(c, sid))

            await poll(syncing)  # the holder is syncing the burst
            holder.kill()  # SIGKILL mid-burst: no final sync, no lease given back
            assert len([p for p in db_hashes(c, sid) if p.startswith("burst/")]) < BURST

            def taken_over() -> bool:
                return c.post(f"/api/sessions/{sid}/sandbox/start").status_code == 200

            await poll(taken_over, timeout=WAIT_S + LEASE_TTL_S)
            # The same shell, through the new holder: the burst ran on while no replica synced.
            later = await open_terminal(taker.ws_url, user, sid)
            await later.wait_output(b"burst-1000-over", timeout=120)
            await later.ws.send(b"echo count-$(ls burst | wc -l)-files\r")
            await later.wait_output(f"count-{BURST}-files".encode(), timeout=60)
            sandbox = await sandbox_hashes(later)
            burst = [p for p in sandbox if re.fullmatch(r"burst/f[0-9]+", p)]
            assert len(burst) == BURST, len(burst)
            deadline = time.monotonic() + WAIT_S
            while True:
                db = db_hashes(c, sid)
                if db == sandbox or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            missing = sorted(set(sandbox) - set(db))
            extra = sorted(set(db) - set(sandbox))
            differ = sorted(p for p in set(db) & set(sandbox) if db[p] != sandbox[p])
            assert not (missing or extra or differ), (
                f"missing in the DB: {missing[:10]} ({len(missing)}), only in the DB: "
                f"{extra[:10]} ({len(extra)}), different: {differ[:10]} ({len(differ)})"
            )
            for i in (1, BURST // 2, BURST):
                # Its last content, at its path (or, if the dead holder's last sync raced that
                # write, in an announced conflict copy next to it: nothing is lost either way).
                kept = [p for p in sandbox if p == f"burst/f{i}" or p.startswith(f"burst/f{i}.")]
                contents = [
                    c.get(f"/api/workspace/{sid}/file/{p}").json().get("content") for p in kept
                ]
                assert f"{i}\n" in contents, (kept, contents)
    finally:
        await term.close()
        if later is not None:
            await later.close()
        if holder.proc is None or holder.proc.poll() is not None:
            holder.start()
