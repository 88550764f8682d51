"""EtcTemplates: a sandbox's /etc cloned from a template is what write_etc_dir would write."""

from __future__ import annotations

import os
from pathlib import Path

from coolcoding.sandbox.local.environment import detect_host_layout
from coolcoding.sandbox.local.etcdir import EtcTemplates, write_etc_dir
from coolcoding.sandbox.local.etcroots import make_etc_root, reclaim_dead_etc_roots


def tree(root: Path) -> dict[str, tuple[int, str | bytes | None]]:
    out: dict[str, tuple[int, str | bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if os.path.islink(p):
                content: str | bytes | None = os.readlink(p)
            elif os.path.isfile(p):
                content = Path(p).read_bytes()
            else:
                content = None
            out[os.path.relpath(p, root)] = (st.st_mode, content)
    return out


def test_cloned_etc_equals_a_generated_one_and_has_its_own_passwd(tmp_path: Path) -> None:
    layout = detect_host_layout()
    templates = EtcTemplates(tmp_path / "templates", layout)
    points = ["/etc/profile.d/coolcoding.sh"]
    for uid in (200_001, 200_002):
        templates.write(tmp_path / f"c{uid}" / "etc", uid=uid, gid=uid, network=False,
                        mount_points=points)  # fmt: skip
        write_etc_dir(tmp_path / f"r{uid}" / "etc", uid=uid, gid=uid, network=False,
                      layout=layout, mount_points=points)  # fmt: skip
        assert tree(tmp_path / f"c{uid}" / "etc") == tree(tmp_path / f"r{uid}" / "etc")
    passwd = [tmp_path / f"c{uid}" / "etc" / "passwd" for uid in (200_001, 200_002)]
    assert os.stat(passwd[0]).st_ino != os.stat(passwd[1]).st_ino
    assert b"200002" in passwd[1].read_bytes() and b"200002" not in passwd[0].read_bytes()
    assert len(templates.in_use()) == 1  # built once for both


def test_network_sandboxes_get_their_own_template(tmp_path: Path) -> None:
    templates = EtcTemplates(tmp_path / "templates", detect_host_layout())
    templates.write(tmp_path / "a" / "etc", uid=1, gid=1, network=False)
    templates.write(tmp_path / "b" / "etc", uid=1, gid=1, network=True)
    assert len(templates.in_use()) == 2


def test_etc_root_is_private_and_dead_servers_roots_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "cc-etc-999999999-abc"  # above any pid_max: no such process
    alive = tmp_path / f"cc-etc-{os.getpid()}-def"
    other = tmp_path / "cc-etc-notes"
    # A dead process of this server whose sandbox "s1" outlived it, and another server's.
    mine = tmp_path / "cc-etc-999999998-tag00001-x"
    theirs = tmp_path / "cc-etc-999999997-tag00002-y"
    for d in (dead, alive, other, mine, mine / "s1", mine / "s2", theirs, theirs / "t1"):
        d.mkdir()
    (mine / "s1" / "passwd").write_text("kept")
    root = make_etc_root(tmp_path, tmp_path / "state", "tag00001")
    assert root.parent == tmp_path and root.name.startswith(f"cc-etc-{os.getpid()}-tag00001-")
    assert root.stat().st_mode & 0o777 == 0o711
    reclaim_dead_etc_roots(tmp_path, "tag00001", {"s1"}, root)
    assert not dead.exists() and alive.exists() and other.exists()
    assert not mine.exists() and (root / "s1" / "passwd").read_text() == "kept"
    # another server's, without an owner file (test_etc_roots_reclaim.py has those with one)
    assert not (root / "s2").exists() and (theirs / "t1").exists()


def test_a_released_etc_is_reused_with_the_next_sandboxs_passwd(tmp_path: Path) -> None:
    layout = detect_host_layout()
    templates = EtcTemplates(tmp_path / "templates", layout)
    first = tmp_path / "eph-1"
    templates.write(first, uid=200_001, gid=200_001, network=False, recyclable=True)
    marker = os.stat(first / "hosts").st_ino
    templates.release(first)
    assert not first.exists()
    second = tmp_path / "eph-2"
    templates.write(second, uid=200_002, gid=200_002, network=False, recyclable=True)
    assert os.stat(second / "hosts").st_ino == marker  # the same dir, not a new clone
    write_etc_dir(tmp_path / "ref", uid=200_002, gid=200_002, network=False, layout=layout)
    assert tree(second) == tree(tmp_path / "ref")  # nothing of the first sandbox is left


def test_a_released_etc_of_an_old_template_is_deleted(tmp_path: Path) -> None:
    templates = EtcTemplates(tmp_path / "templates", detect_host_layout(), ttl_s=0.0)
    first = tmp_path / "eph-1"
    templates.write(first, uid=1, gid=1, network=False, recyclable=True)
    templates.write(tmp_path / "other", uid=1, gid=1, network=False)  # rebuilds the template
    templates.release(first)
    assert not first.exists()
    assert not any(n.startswith("spare-") for n in templates.in_use())


def test_session_etc_dirs_are_never_recycled(tmp_path: Path) -> None:
    templates = EtcTemplates(tmp_path / "templates", detect_host_layout())
    session = tmp_path / "session"
    templates.write(session, uid=1, gid=1, network=False)
    templates.release(session)  # e.g. a caller's mistake: deleted, never handed to another
    assert not session.exists()
    assert not any(n.startswith("spare-") for n in templates.in_use())
