"""``WorkspaceDir.swap``: the atomic replace the sync uses to write editor content into a sandbox."""

from __future__ import annotations

import os
from pathlib import Path

from coolcoding.filesync.hostfs import WorkspaceDir


def test_swap_discards_a_known_file_and_watches_it_for_late_writes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"old\n")
    writer = os.open(tmp_path / "a.txt", os.O_WRONLY | os.O_APPEND)  # opened before the swap
    wdir = WorkspaceDir(str(tmp_path))
    try:
        res = wdir.swap("a.txt", b"new\n", lambda old, n: None, 1000)
        assert res.existed and res.old == b"old\n" and res.aside is None
        assert (tmp_path / "a.txt").read_bytes() == b"new\n"
        assert sorted(os.listdir(tmp_path)) == ["a.txt"]  # no temporary name left
        assert res.late is not None and res.late.changed(1000) is None
        os.write(writer, b"late\n")  # lands in the replaced file, not in the new one
        assert res.late.changed(1000) == b"old\nlate\n"
        res.late.close()
    finally:
        os.close(writer)
        wdir.close()


def test_swap_keeps_an_unknown_file_aside_and_never_overwrites_a_taken_name(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_bytes(b"program output\n")
    (tmp_path / "a.copy0").write_bytes(b"someone else's\n")
    wdir = WorkspaceDir(str(tmp_path))
    try:
        res = wdir.swap("a.txt", b"editor\n", lambda old, n: f"a.copy{n}", 1000)
        assert res.aside == "a.copy1" and res.old == b"program output\n"
        assert (tmp_path / "a.txt").read_bytes() == b"editor\n"
        assert (tmp_path / "a.copy0").read_bytes() == b"someone else's\n"
        assert (tmp_path / "a.copy1").read_bytes() == b"program output\n"
    finally:
        wdir.close()


def test_swap_creates_a_missing_file_and_removes_with_none(tmp_path: Path) -> None:
    wdir = WorkspaceDir(str(tmp_path))
    try:
        res = wdir.swap("n.txt", b"x", lambda old, n: "never", 1000)
        assert not res.existed and (tmp_path / "n.txt").read_bytes() == b"x"
        res = wdir.swap("n.txt", None, lambda old, n: None, 1000)
        assert res.existed and res.old == b"x" and not (tmp_path / "n.txt").exists()
        assert os.listdir(tmp_path) == []
        assert res.late is not None
        res.late.close()
    finally:
        wdir.close()


def test_swap_refuses_a_folder_or_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("/etc/passwd")
    wdir = WorkspaceDir(str(tmp_path))
    try:
        for rel in ("d", "l", "l/x"):
            try:
                wdir.swap(rel, b"x", lambda old, n: None, 1000)
            except OSError:
                pass
            else:
                raise AssertionError(f"swap of {rel} was not refused")
        assert (tmp_path / "d").is_dir() and os.readlink(tmp_path / "l") == "/etc/passwd"
        assert sorted(os.listdir(tmp_path)) == ["d", "l"]
    finally:
        wdir.close()


def test_rename_never_replaces_an_existing_entry(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"unsynced program output")
    (tmp_path / "d").mkdir()
    wdir = WorkspaceDir(str(tmp_path))
    try:
        try:
            wdir.rename("a", "b")
        except FileExistsError:
            pass
        else:
            raise AssertionError("rename replaced b")
        assert (tmp_path / "b").read_bytes() == b"unsynced program output"
        wdir.rename("a", "d/a")
        assert (tmp_path / "d" / "a").read_bytes() == b"a"
    finally:
        wdir.close()
