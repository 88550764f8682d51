"""The web IDE in a real browser (Chromium, headless) against a live server: accounts, the editor,
saving, runs, terminals that survive a reload, and files changed on disk by the sandbox (merged
into a co-edited file; announced, with a conflict choice, when co-editing is turned off).
Fixtures (and the screenshots each test leaves in test-artifacts/e2e/) are in conftest.py.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import (
    PASSWORD,
    create_workspace,
    editor_text,
    open_file,
    register,
    save_state,
    terminal_type,
    turn_off_coedit,
    wait_for_prompt,
    wait_saved_to_db,
)
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


def test_wrong_password_shows_the_servers_message(page: Page) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("#login-username", "nobody-here")
    page.fill("#login-password", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")


def test_new_user_edits_saves_and_runs_main_py(page: Page) -> None:
    register(page)
    uuid = create_workspace(page, "e2e edit and run")
    open_file(page, "main.py")
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text("print('e2e says', 6 * 7)\n")
    # Co-edited (the default): the server saves it; Ctrl+S has it saved now.
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    page.keyboard.press("Control+s")
    wait_saved_to_db(page, uuid, "main.py", "print('e2e says', 6 * 7)\n")
    expect(page.locator(".editor-tab.is-dirty")).to_have_count(0)
    expect(save_state(page)).to_have_attribute("data-state", "saved")

    saved = page.request.get(f"/api/workspace/{uuid}/file/main.py").json()
    assert saved["content"] == "print('e2e says', 6 * 7)\n"
    assert saved["version"] >= 2

    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator(".run-output")).to_contain_text("e2e says 42", timeout=60_000)
    expect(page.locator(".run-output")).to_contain_text("exit code 0")


def test_terminal_runs_commands_and_reattaches_after_a_reload(page: Page) -> None:
    register(page)
    uuid = create_workspace(page, "e2e terminal")
    wait_for_prompt(page)
    terminal_type(page, "echo marker-$((40+2))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("marker-42")
    ids_before = page.evaluate(f"() => sessionStorage.getItem('cc.terminals.{uuid}')")

    page.reload()
    # The same shell comes back with its scrollback (the server replays it on reattach).
    expect(page.locator(".xterm-rows")).to_contain_text("marker-42", timeout=60_000)
    assert page.evaluate(f"() => sessionStorage.getItem('cc.terminals.{uuid}')") == ids_before
    terminal_type(page, "echo again-$((1+1))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("again-2")


def test_a_terminal_write_is_merged_into_the_co_edited_file_with_the_users_typing(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    uuid = create_workspace(page, "e2e merge")
    wait_for_prompt(page)
    open_file(page, "main.py")
    expect(save_state(page)).to_have_attribute("data-mode", "coedit")
    start = page.request.get(f"/api/workspace/{uuid}/file/main.py").json()["content"]
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+Home")
    page.keyboard.insert_text("# mine\n")
    # At once, before the server's debounced save: the sandbox appends to the file.
    terminal_type(page, "echo 'print(3)' >> main.py\n")
    lines = page.locator(".monaco-editor .view-lines")
    expect(lines).to_contain_text("print(3)")
    expect(lines).to_contain_text("# mine")
    # Merged into the open document: no notice, no conflict dialog, nothing lost.
    expect(page.locator(".editor-notice")).to_have_count(0)
    wait_saved_to_db(page, uuid, "main.py", "# mine\n" + start + "print(3)\n")
    expect(save_state(page)).to_have_attribute("data-state", "saved")
    shots.take("merged")


def test_disk_changes_reload_a_clean_tab_and_offer_a_choice_on_a_dirty_one(page: Page) -> None:
    """The single-user path (co-editing turned off by the user's setting)."""
    register(page)
    turn_off_coedit(page)
    create_workspace(page, "e2e sync")
    wait_for_prompt(page)
    open_file(page, "main.py")
    expect(page.get_by_test_id("single-user-reason")).to_contain_text("co-editing is turned off")

    # A clean tab follows the file on disk.
    terminal_type(page, "echo 'print(2)' >> main.py; mkdir -p lib && touch lib/util.py\n")
    expect(page.locator(".monaco-editor .view-lines")).to_contain_text("print(2)")
    expect(page.locator("[role=treeitem][data-path='lib']")).to_be_visible()

    # With unsaved edits, a change on disk is announced instead of overwriting them.
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("# mine\n")
    terminal_type(page, "echo 'print(3)' >> main.py\n")
    expect(page.locator(".editor-notice")).to_contain_text("changed on disk")
    assert "# mine" in editor_text(page)

    # Saving over it is refused (409) and the user chooses; here: overwrite with their own edits.
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+s")
    expect(page.locator(".editor-notice")).to_contain_text("changed elsewhere")
    page.get_by_role("button", name="Overwrite with mine").click()
    expect(page.locator(".editor-notice")).to_have_count(0)
    expect(page.locator(".status-bar")).to_contain_text("Saved")
    terminal_type(page, "echo saved-$((1+1))-$(grep -c mine main.py)\n")
    expect(page.locator(".xterm-rows")).to_contain_text("saved-2-1")


def test_files_are_created_renamed_and_deleted_from_the_explorer(page: Page) -> None:
    register(page)
    create_workspace(page, "e2e files")
    expect(page.locator("[role=treeitem][data-path='main.py']")).to_be_visible()

    page.get_by_role("button", name="New folder").click()
    page.keyboard.type("pkg")
    page.keyboard.press("Enter")
    expect(page.locator("[role=treeitem][data-path='pkg']")).to_be_visible()
    page.get_by_role("button", name="New file").click()
    page.keyboard.type("util.py")
    page.keyboard.press("Enter")
    expect(page.locator("[role=treeitem][data-path='pkg/util.py']")).to_be_visible()
    expect(page.locator(".editor-tab[title='pkg/util.py']")).to_be_visible()

    page.locator("[role=treeitem][data-path='main.py']").click()
    page.keyboard.press("F2")
    page.keyboard.press("Control+a")
    page.keyboard.type("app.py")
    page.keyboard.press("Enter")
    expect(page.locator("[role=treeitem][data-path='app.py']")).to_be_visible()
    expect(page.locator("[role=treeitem][data-path='main.py']")).to_have_count(0)

    pkg = page.locator("[role=treeitem][data-path='pkg']")
    pkg.click()
    expect(pkg).to_be_focused()
    page.keyboard.press("Delete")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.locator("[role=treeitem][data-path='pkg']")).to_have_count(0)
    names = [
        i["path"]
        for i in page.request.get(page.url.replace("/s/", "/api/workspace/") + "/files").json()[
            "items"
        ]
    ]
    assert names == ["app.py"]


def test_signing_in_from_a_workspace_link_opens_its_terminal(
    page: Page, shots: Screenshots
) -> None:
    username = register(page)
    uuid = create_workspace(page, "e2e sign in")
    wait_for_prompt(page)
    page.context.clear_cookies()

    page.goto(f"/s/{uuid}")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    shots.take("login-page")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/s/{uuid}$"))
    wait_for_prompt(page)
    terminal_type(page, "echo signed-in-$((2+3))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("signed-in-5")


def test_a_user_deletes_their_account_from_the_dashboard(page: Page, shots: Screenshots) -> None:
    username = register(page)
    create_workspace(page, "to be deleted")
    page.goto("/")
    expect(page.get_by_text("to be deleted")).to_be_visible()

    page.get_by_role("button", name="Delete account").click()
    dialog = page.get_by_role("dialog")
    field = dialog.locator("input[type=password]")
    field.fill("not my password")
    dialog.get_by_role("button", name="Delete account").click()
    expect(dialog.get_by_role("alert")).to_contain_text("That is not your password.")
    shots.take("wrong-password")
    # A wrong password keeps the user signed in, on the dashboard.
    expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()

    field.fill(PASSWORD)
    dialog.get_by_role("button", name="Delete account").click()
    expect(page).to_have_url(re.compile(r"/login"))
    shots.take("deleted")
    page.fill("#login-username", username)
    page.fill("#login-password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
