"""The loop device set-up's pure parts, and the errors naming the missing host resource."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local import loopmount
from coolcoding.sandbox.local.environment import check_disk_images


def test_loop_config_is_the_kernels_struct() -> None:
    cfg = loopmount.loop_config(5, 4096, loopmount.LO_FLAGS_AUTOCLEAR, b"/d/x.img")
    assert len(cfg) == 304  # sizeof(struct loop_config) on every Linux ABI
    assert cfg[:8] == (5).to_bytes(4, "little") + (4096).to_bytes(4, "little")
    assert cfg[8 + 52 : 8 + 56] == (4).to_bytes(4, "little")  # info.lo_flags
    assert cfg[8 + 56 : 8 + 64] == b"/d/x.img"  # info.lo_file_name


def test_no_loop_control_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(loopmount, "LOOP_CONTROL", str(tmp_path / "loop-control"))
    (tmp_path / "img").write_bytes(b"")
    with pytest.raises(loopmount.LoopMountError, match=r"no loop devices .*loop-control missing"):
        loopmount.mount_image(tmp_path / "img", tmp_path, "ext4", 4096)


def test_a_server_that_cannot_mount_images_fails_closed_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SandboxError) as info:
        check_disk_images()
    assert info.value.reason == "disk_quota_unavailable"
    assert "needs root" in info.value.log_message
    assert "COOLCODING_SANDBOX_DISK_QUOTA=measured" in info.value.log_message
