"""Live co-editing in two Chromium contexts on the same workspace: both type on the same line and
end with the same text (in the DB too), each sees the other's cursor label, the presence list
shows both, and "Follow" opens the file the other has and goes to their line."""

from __future__ import annotations

import time

from playwright.sync_api import Browser, Page, expect

from tests.conftest import LiveServer
from tests.e2e.ide_actions import create_workspace, editor_text, open_file, register, tree_item


def wait_equal(a: Page, b: Page, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        ta, tb = editor_text(a), editor_text(b)
        if ta == tb:
            return ta
        assert time.monotonic() < deadline, (ta, tb)
        time.sleep(0.1)


def test_two_browsers_co_edit_the_same_line_see_cursors_presence_and_follow(
    page: Page, browser: Browser, server: LiveServer
) -> None:
    name = register(page)
    uuid = create_workspace(page, "pair")
    # The starter file first (a new workspace gets it only while it is empty).
    expect(tree_item(page, "main.py")).to_be_visible()
    r = page.request.post(
        f"/api/workspace/{uuid}/file/other.py",
        data={"content": "one\ntwo\nthree\nfour\n"},
    )
    assert r.ok, r.text()
    other_ctx = browser.new_context(
        base_url=server.base_url,
        viewport={"width": 1400, "height": 860},
        storage_state=page.context.storage_state(),
    )
    other_ctx.set_default_timeout(30_000)
    errors: list[str] = []
    b = other_ctx.new_page()
    b.on("pageerror", lambda e: errors.append(str(e)))
    try:
        b.goto(f"/s/{uuid}")
        for p in (page, b):
            open_file(p, "main.py")  # co-edited: the default, no switch
        # Presence: both connections, in both browsers.
        for p in (page, b):
            expect(p.locator("[data-testid=presence-list] li")).to_have_count(2)
            expect(p.locator("[data-testid=presence-list]")).to_contain_text(f"{name} (you)")
        # Same line, both typing (end of line 1).
        start = wait_equal(page, b)
        for p in (page, b):
            p.locator(".monaco-editor .view-lines").click()
            p.keyboard.press("Control+Home")
            p.keyboard.press("End")
        for i in range(5):
            page.keyboard.type(f"A{i}")
            b.keyboard.type(f"B{i}")
        final = wait_equal(page, b)
        # Typing at the same spot interleaves the two; each one's keystrokes keep their order.
        assert len(final) == len(start) + 20, final
        added = final.split("\n")[0][len(start.split("\n")[0]) :]
        assert sorted(added) == sorted("".join(f"A{i}B{i}" for i in range(5))), added
        # The other's cursor, labelled with their name (the label is CSS content).
        for p in (page, b):
            head = p.locator(".monaco-editor .yRemoteSelectionHead").first
            expect(head).to_be_attached()
            label = head.evaluate("el => getComputedStyle(el, '::after').content")
            assert name in label, label
        # Saved to the DB by the server (no Ctrl+S).
        deadline = time.monotonic() + 20
        while True:
            db = page.request.get(f"/api/workspace/{uuid}/file/main.py").json()["content"]
            # (Monaco's rendered lines leave out blank lines: compare without whitespace.)
            if "".join(db.split()) == "".join(final.split()):
                break
            assert time.monotonic() < deadline, (db, final)
            time.sleep(0.2)
        expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)
        # Follow: b follows a; a opens other.py and moves to line 3.
        b.locator("[data-testid=presence-list] li", has_not_text="(you)").get_by_role(
            "button", name="Follow"
        ).click()
        tree_item(page, "other.py").click()
        expect(page.locator(".monaco-editor .view-lines")).to_contain_text("three")
        page.locator(".monaco-editor .view-lines").click()
        page.keyboard.press("Control+Home")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        expect(b.get_by_role("tab", name="other.py")).to_have_attribute("aria-selected", "true")
        expect(b.locator(".status-bar, footer").first).to_contain_text("Ln 3")
    finally:
        other_ctx.close()
    assert errors == []
