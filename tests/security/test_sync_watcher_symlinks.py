"""Finding 10: the watcher (running as root) never follows a symlink, at any depth, whatever renames
race with it. ``mkdir e; mkdir e/usr; mv e keepN; ln -s / e`` in a loop used to make it watch and
walk the host's /usr (inotify watches 1,614 -> 17,915)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import (
    LiveServer,
    UserClient,
    module_live_server,
)
from tests.sandbox_helpers import Term, file_items

pytestmark = pytest.mark.sandbox
ROUNDS = 60


server = module_live_server("wlink")


async def test_renamed_parent_replaced_by_a_symlink_is_never_watched_or_walked(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid)
    st = server.platform.sync.get(sid)
    assert st is not None and st.watcher is not None
    peak = st.watcher.watch_count
    # Each round: the watcher sees ``e`` as a real folder (and watches it), then ``e/usr`` is
    # made, ``e`` renamed away and replaced by a link to / within microseconds, before the
    # watcher reads the events: resolving "e/usr" by its name now means the host's /usr.
    program = (
        "import os, time\n"
        f"for i in range({ROUNDS}):\n"
        "    os.mkdir('e'); time.sleep(0.03)\n"
        "    os.mkdir('e/usr'); os.rename('e', f'keep{i}'); os.symlink('/', 'e')\n"
        "    time.sleep(0.03); os.unlink('e')\n"
    )
    loop = f'python3 -c "{program}"'
    run = asyncio.create_task(t.run(loop))
    while not run.done():
        peak = max(peak, st.watcher.watch_count)
        await asyncio.sleep(0.002)
    msg, out = await run
    assert msg["exit_code"] == 0, out
    await t.run("true")
    peak = max(peak, st.watcher.watch_count)
    # The workspace holds the root plus 2 folders per round; the host's /usr has thousands.
    assert peak <= 2 * ROUNDS + 5, f"{peak} inotify watches for {2 * ROUNDS + 1} folders"
    items = file_items(user, sid)
    stray = [p for p in items if not p.startswith("keep") or p.count("/") > 2]
    assert not stray, stray[:10]
    await t.close()
