"""Live co-editing as the default editing mode, in Chromium: Run right after typing runs what the
user sees (the co-edit flush), nothing typed is lost while the co-editing socket is down (Yjs
resync), and a role change or revocation by the owner applies without a reload.

The server here saves co-edited documents only 2 s after the last change, so a Run that did not
flush first would run the previous text."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from tests.conftest import LiveServer
from tests.e2e.conftest import sandbox_live_server
from tests.e2e.ide_actions import (
    create_workspace,
    editor_text,
    open_file,
    register,
    save_state,
    wait_for_prompt,
    wait_saved_to_db,
)
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with sandbox_live_server(collab_save_debounce_ms=2000) as srv:
        yield srv


def test_run_right_after_typing_runs_the_last_keystroke(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "type and run")
    open_file(page, "main.py")
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("print('first version')\n")
    page.keyboard.press("Control+s")
    wait_saved_to_db(page, uuid, "main.py", "print('first version')\n")
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    # Typed, then Run at once (well inside the server's 2 s save debounce).
    page.keyboard.press("Control+End")
    page.keyboard.type("print('last keystroke')")
    page.get_by_role("button", name="Run", exact=True).click()
    out = page.locator(".run-output")
    expect(out).to_contain_text("exit code 0", timeout=60_000)
    expect(out).to_contain_text("first version")
    expect(out).to_contain_text("last keystroke")
    shots.take("ran-the-last-keystroke")


def test_nothing_typed_is_lost_when_the_socket_drops_and_reconnects(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    uuid = create_workspace(page, "drop and resync")
    # The co-editing socket goes through this route: the test drops it and keeps it down.
    online = {"up": True}
    sockets: list[WebSocketRoute] = []

    def route(ws: WebSocketRoute) -> None:
        if not online["up"]:
            ws.close(code=4000, reason="test: offline")
            return
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r"/collab$"), route)
    page.reload()
    open_file(page, "main.py")
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("a = 1\n")
    wait_saved_to_db(page, uuid, "main.py", "a = 1\n")
    expect(save_state(page)).to_have_attribute("data-state", "saved")

    online["up"] = False
    for ws in sockets:
        ws.close(code=4000, reason="test: dropped")
    page.keyboard.press("Control+End")
    page.keyboard.type("b = 2\n")  # typed while the socket is down
    expect(save_state(page)).to_have_attribute("data-state", "unsaved")
    expect(save_state(page)).to_contain_text("offline")
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(1)
    shots.take("offline-unsaved")
    time.sleep(3)  # longer than the save debounce: nothing can have reached the server
    assert page.request.get(f"/api/workspace/{uuid}/file/main.py").json()["content"] == "a = 1\n"
    page.keyboard.type("c = 3\n")

    online["up"] = True  # the client's next retry gets through and resyncs
    wait_saved_to_db(page, uuid, "main.py", "a = 1\nb = 2\nc = 3\n", timeout=40)
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)
    assert "".join(editor_text(page).split()) == "a=1b=2c=3"
    shots.take("resynced")


def test_a_role_change_and_a_revocation_apply_without_a_reload(
    page: Page, browser: Browser, server: LiveServer, shots: Screenshots
) -> None:
    owner = page
    register(owner)
    uuid = create_workspace(owner, "roles live")
    wait_for_prompt(owner)
    ctx = browser.new_context(base_url=server.base_url, viewport={"width": 1400, "height": 860})
    ctx.set_default_timeout(30_000)
    errors: list[str] = []
    other = ctx.new_page()
    other.on("pageerror", lambda e: errors.append(str(e)))
    try:
        name = register(other)
        r = owner.request.post(
            f"/api/sessions/{uuid}/members", data={"user": name, "role": "viewer"}
        )
        assert r.status == 201, r.text()
        assert other.request.post(f"/api/invitations/{uuid}/accept").ok
        other.goto(f"/s/{uuid}")
        open_file(other, "main.py")
        expect(other.get_by_text("View only")).to_be_visible()
        expect(other.get_by_role("note")).to_contain_text("read-only")
        expect(other.get_by_role("button", name="Run", exact=True)).to_be_disabled()
        other.locator(".monaco-editor .view-lines").click()
        other.keyboard.type("viewer-typed ")
        assert "viewer-typed" not in editor_text(other)
        marker = other.evaluate("() => (window.__notReloaded = true)")
        assert marker is True

        # viewer -> editor, from the owner's Share dialog
        owner.get_by_role("button", name="Share").click()
        owner.get_by_label(f"Role of {name}").select_option("editor")
        expect(other.get_by_text("View only")).to_have_count(0, timeout=2000)
        expect(other.get_by_role("button", name="Run", exact=True)).to_be_enabled(timeout=2000)
        assert other.evaluate("() => window.__notReloaded === true")  # no reload
        open_file(other, "main.py")
        expect(save_state(other)).to_have_attribute("data-mode", "coedit")
        other.locator(".monaco-editor .view-lines").click()
        other.keyboard.press("Control+Home")
        other.keyboard.type("# from the new editor\n")
        wait_saved_to_db_contains(owner, uuid, "main.py", "# from the new editor")
        # Its terminal takes input now.
        wait_for_prompt(other)
        other.locator(".xterm").first.click()
        other.keyboard.type("echo editor-typed-$((20+1))\n")
        expect(owner.locator(".xterm-rows")).to_contain_text("editor-typed-21")
        shots.take("viewer-became-editor")

        # editor -> viewer
        owner.get_by_label(f"Role of {name}").select_option("viewer")
        expect(other.get_by_text("View only")).to_be_visible(timeout=2000)
        expect(other.get_by_role("button", name="Run", exact=True)).to_be_disabled()
        assert other.evaluate("() => window.__notReloaded === true")

        # revoked: a notice, back on the dashboard
        row = owner.locator(f"li[data-username='{name}']")
        row.get_by_role("button", name="Revoke").click()
        expect(other.get_by_test_id("dashboard-notice")).to_contain_text("removed", timeout=2000)
        expect(other.get_by_role("heading", name="Your workspaces")).to_be_visible()
        shots.page = other
        shots.take("revoked-notice")
        shots.page = owner
    finally:
        ctx.close()
    assert errors == []


def wait_saved_to_db_contains(page: Page, uuid: str, path: str, part: str) -> None:
    deadline = time.monotonic() + 20
    while part not in page.request.get(f"/api/workspace/{uuid}/file/{path}").json()["content"]:
        assert time.monotonic() < deadline, part
        time.sleep(0.1)
