"""The spawner's request is built as a plain dict (no ``dataclasses.asdict``): it must carry
exactly ``SpawnRequest``'s fields, which the helper reads."""

from __future__ import annotations

import dataclasses
import resource

from coolcoding.sandbox.local.spawner import SpawnRequest, SpawnSetup, spawn_request


def test_the_request_dict_has_the_dataclass_fields_and_values() -> None:
    setup = SpawnSetup(
        procs_files=["/cg/a/cgroup.procs"],
        rlimits=[(resource.RLIMIT_NOFILE, (64, 64))],
        uid=1234,
        gid=1235,
        drop=True,
        controlling_tty=False,
        netns_fd=9,
    )
    got = spawn_request(["/bin/true", "x"], {"A": "b"}, setup, [0, 1, 2, -1], True, 3)
    want = SpawnRequest(
        argv=["/bin/true", "x"],
        env={"A": "b"},
        targets=[0, 1, 2, -1],
        procs_files=["/cg/a/cgroup.procs"],
        rlimits=[(resource.RLIMIT_NOFILE, 64, 64)],
        uid=1234,
        gid=1235,
        drop=True,
        controlling_tty=False,
        new_session=True,
        netns_index=3,
    )
    assert got == dataclasses.asdict(want)
