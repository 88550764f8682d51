"""What a user does in the web IDE, as Playwright steps shared by the browser tests."""

from __future__ import annotations

import re
import secrets

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
    tree_item(page, path).click()
    expect(page.locator(".monaco-editor .view-lines")).to_be_visible()


def wait_for_prompt(page: Page) -> None:
    expect(page.locator(".xterm-rows")).to_contain_text("$", timeout=60_000)


def terminal_type(page: Page, text: str) -> None:
    page.locator(".xterm").first.click()
    page.keyboard.type(text)


def editor_text(page: Page) -> str:
    text = page.evaluate("() => document.querySelector('.monaco-editor .view-lines').innerText")
    return str(text).replace("\xa0", " ")  # Monaco renders spaces as no-break spaces
