"""What a user does in the web IDE, as Playwright steps shared by the browser tests."""

from __future__ import annotations

import re
import secrets
import time

from playwright.sync_api import Locator, Page, expect

PASSWORD = "correct horse battery"


def register(page: Page) -> str:
    username = f"e2e{secrets.token_hex(4)}"
    page.goto("/register")
    page.fill("#reg-username", username)
    page.fill("#reg-email", f"{username}@example.com")
    page.fill("#reg-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
    return username


def create_workspace(page: Page, name: str) -> str:
    page.fill("#new-session-name", name)
    page.get_by_role("button", name="Create", exact=True).click()
    page.wait_for_url(re.compile(r"/s/[0-9a-f-]+$"))
    return page.url.rsplit("/", 1)[1]


def tree_item(page: Page, path: str) -> Locator:
    return page.locator(f"[role=treeitem][data-path='{path}']")


def open_file(page: Page, path: str) -> None:
    """Open ``path`` and wait until it can be typed in: bound to its shared document (live
    co-editing, the default) or edited single-user (then the status bar says why)."""
    tree_item(page, path).click()
    # (Monaco is loaded lazily: on a busy machine the first editor takes a while.)
    expect(page.locator(".monaco-editor .view-lines")).to_be_visible(timeout=20_000)
    expect(page.locator(".editor-tab.is-active")).to_have_attribute("title", path)
    expect(
        page.locator(
            ".status-bar [data-testid=save-state][data-mode=coedit],"
            " .status-bar [data-testid=single-user-reason]"
        ).first
    ).to_be_visible(timeout=15_000)


def turn_off_coedit(page: Page) -> None:
    """The user's setting: files are saved single-user with Ctrl+S (set before the IDE loads)."""
    page.evaluate("() => localStorage.setItem('cc-live-coedit', '0')")


def save_state(page: Page) -> Locator:
    """The open file's save indicator in the status bar (data-mode coedit or single)."""
    return page.locator(".status-bar [data-testid=save-state]")


def wait_saved_to_db(page: Page, uuid: str, path: str, want: str, timeout: float = 20) -> None:
    """Wait until the file in the DB is ``want``."""
    deadline = time.monotonic() + timeout
    while True:
        got = page.request.get(f"/api/workspace/{uuid}/file/{path}").json()["content"]
        if got == want:
            return
        assert time.monotonic() < deadline, (got, want)
        time.sleep(0.1)


def wait_for_prompt(page: Page) -> None:
    expect(page.locator(".xterm-rows")).to_contain_text("$", timeout=60_000)


def terminal_type(page: Page, text: str) -> None:
    page.locator(".xterm").first.click()
    page.keyboard.type(text)


def editor_text(page: Page) -> str:
    text = page.evaluate("() => document.querySelector('.monaco-editor .view-lines').innerText")
    return str(text).replace("\xa0", " ")  # Monaco renders spaces as no-break spaces
