"""The server id (sandbox/local/identity.py) and the cgroup layout it scopes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local.identity import SERVER_ID_FILE, server_id


def test_the_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = server_id(tmp_path / "data")
    assert first.startswith("srv-") and len(first) == 16
    assert server_id(tmp_path / "data") == first
    assert (tmp_path / "data" / SERVER_ID_FILE).read_text().strip() == first
    assert server_id(tmp_path / "other") != first  # another data dir: another owner
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [SERVER_ID_FILE]


def test_concurrent_first_starts_agree(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: server_id(tmp_path), range(32)))
    assert len(ids) == 1


def test_a_damaged_id_file_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / SERVER_ID_FILE).write_text("../../etc\n")
    with pytest.raises(SandboxError) as info:
        server_id(tmp_path)
    assert "not a server id" in info.value.log_message
    assert (tmp_path / SERVER_ID_FILE).read_text() == "../../etc\n"
