"""Issue 4's whole flow in one browser session: a new user builds a small project in the explorer,
the editor and the terminal, and finds all of it again after a reload. Each step leaves a
screenshot in test-artifacts/e2e/test_new_user_builds_runs_and_reloads_a_project/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import (
    create_workspace,
    editor_text,
    register,
    save_state,
    terminal_type,
    tree_item,
    wait_for_prompt,
    wait_saved_to_db,
)
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]

# Typed key by key into Monaco (auto-closed brackets and quotes are typed over, as a user would).
APP_LINES = ["import sys", 'print("hello from", sys.argv[0], 6 * 7)']
APP_SOURCE = "\n".join(APP_LINES) + "\n"


def test_new_user_builds_runs_and_reloads_a_project(page: Page, shots: Screenshots) -> None:
    register(page)
    shots.take("registered")
    uuid = create_workspace(page, "e2e whole flow")
    wait_for_prompt(page)
    shots.take("workspace-ready")

    # src/app.py from the explorer: a new folder, then a new file inside it (it opens in a tab).
    page.get_by_role("button", name="New folder").click()
    page.keyboard.type("src")
    page.keyboard.press("Enter")
    expect(tree_item(page, "src")).to_be_visible()
    page.get_by_role("button", name="New file").click()
    page.keyboard.type("app.py")
    page.keyboard.press("Enter")
    expect(tree_item(page, "src/app.py")).to_be_visible()
    active_tab = page.locator(".editor-tab[title='src/app.py']")
    expect(active_tab).to_be_visible()
    # Bound to its shared document (live co-editing is the default): typing goes there.
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    shots.take("file-created")

    page.locator(".monaco-editor .view-lines").click()
    for line in APP_LINES:
        page.keyboard.type(line)
        page.keyboard.press("Enter")
    shots.take("code-typed")
    page.keyboard.press("Control+s")  # the server saves it now (it would anyway, debounced)
    wait_saved_to_db(page, uuid, "src/app.py", APP_SOURCE)
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    shots.take("saved")

    # The saved file is in the sandbox: run it from the terminal.
    terminal_type(page, "python3 src/app.py\n")
    terminal = page.locator(".xterm-rows")
    expect(terminal).to_contain_text("hello from src/app.py 42", timeout=60_000)
    shots.take("ran-in-terminal")

    # A file made in the sandbox shows up in the tree.
    terminal_type(page, "echo hi > from_terminal.txt\n")
    expect(tree_item(page, "from_terminal.txt")).to_be_visible(timeout=30_000)
    shots.take("terminal-file-in-tree")
    terminal_ids = page.evaluate(f"() => sessionStorage.getItem('cc.terminals.{uuid}')")

    page.reload()
    for path in ("src", "src/app.py", "from_terminal.txt"):
        expect(tree_item(page, path)).to_be_visible()
    expect(active_tab).to_be_visible()
    expect(page.locator(".monaco-editor .view-lines")).to_contain_text("hello from")
    assert editor_text(page).strip().splitlines() == APP_LINES
    # The same shell, with its scrollback replayed, and still working.
    expect(terminal).to_contain_text("hello from src/app.py 42", timeout=60_000)
    assert page.evaluate(f"() => sessionStorage.getItem('cc.terminals.{uuid}')") == terminal_ids
    terminal_type(page, "cat from_terminal.txt; echo after-reload-$((40+2))\n")
    expect(terminal).to_contain_text("after-reload-42")
    shots.take("after-reload")
    assert page.request.get(f"/api/workspace/{uuid}/file/from_terminal.txt").json()["content"] == (
        "hi\n"
    )
