"""When live co-editing cannot apply, in Chromium: a file over COLLAB_MAX_DOC_BYTES and a page
without the co-editing socket are edited single-user (Ctrl+S saves, the status bar says why),
and a co-edited file whose save fails (over the workspace quota) says so, keeps the edits, will
not run, and is saved once there is room."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import sandbox_live_server
from tests.e2e.ide_actions import (
    create_workspace,
    open_file,
    register,
    save_state,
    tree_item,
    wait_saved_to_db,
)
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with sandbox_live_server(
        collab_max_doc_bytes=1500, max_workspace_bytes=4000, sandbox_disk_quota="measured"
    ) as srv:
        yield srv


def put(page: Page, uuid: str, path: str, content: str) -> None:
    r = page.request.post(f"/api/workspace/{uuid}/file/{path}", data={"content": content})
    assert r.ok, r.text()


def test_a_file_too_large_to_co_edit_is_saved_single_user(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "too large")
    expect(tree_item(page, "main.py")).to_be_visible()
    big = "".join(f"line {i:04d} of a long file\n" for i in range(80))  # about 2 KB
    put(page, uuid, "big.txt", big)
    expect(tree_item(page, "big.txt")).to_be_visible()
    open_file(page, "big.txt")
    reason = page.get_by_test_id("single-user-reason")
    expect(reason).to_contain_text("cannot be co-edited")
    expect(save_state(page)).to_have_attribute("data-mode", "single")
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+Home")
    page.keyboard.insert_text("top\n")
    expect(save_state(page)).to_have_attribute("data-state", "unsaved")
    page.keyboard.press("Control+s")
    wait_saved_to_db(page, uuid, "big.txt", "top\n" + big)
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    shots.take("single-user-too-large")
    # Another file of the same workspace is still co-edited.
    open_file(page, "main.py")
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")


def test_a_failed_co_edit_save_is_shown_and_nothing_is_lost(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "quota")
    expect(tree_item(page, "main.py")).to_be_visible()  # the starter (only while it is empty)
    put(page, uuid, "filler.txt", "f" * 3000)
    expect(tree_item(page, "filler.txt")).to_be_visible()
    open_file(page, "main.py")
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    text = "x = '" + "y" * 1200 + "'\n"  # under the co-edit limit, over the workspace quota
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    expect(save_state(page)).to_have_attribute("data-state", "unsaved", timeout=10_000)
    expect(save_state(page)).to_contain_text("save failed")
    expect(save_state(page)).to_contain_text("quota")
    expect(page.locator(".toast").filter(has_text="quota").first).to_be_visible()
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(1)
    # Run will not run a file it could not save.
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text(re.compile("Not run: main.py could not be saved"))).to_be_visible()
    shots.take("save-failed")
    assert page.request.get(f"/api/workspace/{uuid}/file/main.py").json()["content"] != text
    # Room again: the next save (Ctrl+S) keeps everything typed.
    assert page.request.delete(f"/api/workspace/{uuid}/file/filler.txt").ok
    page.keyboard.press("Control+s")
    wait_saved_to_db(page, uuid, "main.py", text)
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)


def test_without_the_co_editing_socket_files_are_saved_single_user(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    uuid = create_workspace(page, "no socket")

    def refuse(ws: WebSocketRoute) -> None:
        ws.close(code=4000, reason="test: no co-editing here")

    page.route_web_socket(re.compile(r"/collab$"), refuse)
    page.reload()
    open_file(page, "main.py")
    expect(page.get_by_test_id("single-user-reason")).to_contain_text(
        "co-editing connection is not available", timeout=20_000
    )
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("print('single user')\n")
    expect(save_state(page)).to_have_attribute("data-state", "unsaved")
    page.keyboard.press("Control+s")
    wait_saved_to_db(page, uuid, "main.py", "print('single user')\n")
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    shots.take("single-user-no-socket")
