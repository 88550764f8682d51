"""History in a real browser (Chromium, headless): a file's versions with Monaco's diff editor and
restore, a snapshot taken and restored, a deleted file restored from the trash, a workspace forked
from the dashboard, and a deleted workspace restored."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer, start_live_server
from tests.e2e.ide_actions import (
    create_workspace,
    open_file,
    register,
    tree_item,
    wait_saved_to_db,
)
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """Every save its own version (no coalescing), so that a test makes versions quickly."""
    data_dir = Path(tempfile.mkdtemp(prefix="cc-e2e-history-", dir="/tmp"))
    os.chmod(data_dir, 0o711)
    srv, stop = start_live_server("sqlite", data_dir, history_coalesce_s=0.0)
    try:
        yield srv
    finally:
        stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _content(page: Page, uuid: str, path: str) -> str:
    r = page.request.get(f"/api/workspace/{uuid}/file/{path}")
    assert r.ok, r.text()
    return str(r.json()["content"])


def _save(page: Page, uuid: str, path: str, content: str) -> None:
    r = page.request.post(f"/api/workspace/{uuid}/file/{path}", data={"content": content})
    assert r.ok, r.text()


def test_history_diff_restore_snapshot_trash(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e history")
    _save(page, uuid, "notes.txt", "first line\n")
    _save(page, uuid, "other.txt", "keep\n")
    expect(tree_item(page, "notes.txt")).to_be_visible()
    open_file(page, "notes.txt")
    _save_from_editor(page, uuid, "notes.txt", "second line\n")

    page.get_by_role("button", name="History", exact=True).click()
    dialog = page.get_by_role("dialog")
    versions = dialog.get_by_role("list", name="Versions").locator("li")
    expect(versions).to_have_count(2)
    # The oldest version against the current file, side by side.
    versions.last.locator(".history-pick").click()
    expect(dialog.locator(".monaco-diff-editor")).to_be_visible()
    expect(dialog.locator(".monaco-diff-editor")).to_contain_text("first line")
    shots.take("diff")
    versions.last.get_by_role("button", name=re.compile("Restore version")).click()
    expect(
        page.locator(".toast, [role=status]").filter(has_text="Restored notes.txt")
    ).to_be_visible()
    assert _content(page, uuid, "notes.txt") == "first line\n"
    expect(versions).to_have_count(3)

    # Snapshot, a change, restore the snapshot.
    dialog.get_by_role("tab", name="Snapshots").click()
    dialog.get_by_label("Snapshot name").fill("good state")
    dialog.get_by_role("button", name="Take snapshot").click()
    snaps = dialog.get_by_role("list", name="Snapshots").locator("li")
    expect(snaps.filter(has_text="good state")).to_have_count(1)
    _save(page, uuid, "notes.txt", "broken\n")
    snaps.filter(has_text="good state").get_by_role("button", name="Browse").click()
    dialog.get_by_role("button", name="notes.txt").click()
    expect(dialog.get_by_label("Content of notes.txt")).to_contain_text("first line")
    dialog.get_by_role("button", name="Restore snapshot good state").click()
    expect(
        page.locator(".toast, [role=status]").filter(has_text="Restored snapshot")
    ).to_be_visible()
    assert _content(page, uuid, "notes.txt") == "first line\n"
    shots.take("snapshots")

    # A deleted file comes back from the trash.
    assert page.request.delete(f"/api/workspace/{uuid}/file/other.txt").ok
    dialog.get_by_role("tab", name="Trash").click()
    dialog.get_by_role("button", name="Restore other.txt").click()
    expect(page.locator(".toast, [role=status]").filter(has_text="from the trash")).to_be_visible()
    assert _content(page, uuid, "other.txt") == "keep\n"
    shots.take("trash")


def _save_from_editor(page: Page, uuid: str, path: str, text: str) -> None:
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    page.keyboard.press("Control+s")  # co-edited: the server saves now (flush)
    wait_saved_to_db(page, uuid, path, text)
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)


def test_fork_and_restore_a_deleted_workspace(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e origin")
    _save(page, uuid, "app.py", "print('origin')\n")
    page.goto("/")
    page.get_by_role("button", name="Fork e2e origin", exact=True).click()
    page.wait_for_url(re.compile(r"/s/[0-9a-f-]+$"))
    fork = page.url.rsplit("/", 1)[1]
    assert fork != uuid
    expect(page.locator(".ide-forked-from")).to_contain_text("forked from e2e origin")
    assert _content(page, fork, "app.py") == "print('origin')\n"
    shots.take("fork")

    page.goto("/")
    expect(page.get_by_text("1 forks")).to_be_visible()
    page.get_by_role("button", name="Delete e2e origin", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    deleted = page.get_by_role("region", name="Recently deleted")
    expect(deleted).to_contain_text("e2e origin")
    deleted.get_by_role("button", name="Restore e2e origin", exact=True).click()
    expect(page.get_by_role("link", name="e2e origin", exact=True)).to_be_visible()
    expect(deleted).to_have_count(0)
    assert _content(page, uuid, "app.py") == "print('origin')\n"
    shots.take("restored")
