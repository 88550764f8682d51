"""Sharing in real browsers, three users in three contexts: the owner invites an editor and a
viewer from the Share dialog, they accept on their dashboards, the editor types in the shared
terminal and the owner sees it, the viewer watches read-only, the owner revokes the editor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import LiveServer
from tests.e2e.ide_actions import create_workspace, register, terminal_type, wait_for_prompt

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


@pytest.fixture
def other_contexts(browser: Browser, server: LiveServer) -> Iterator[list[BrowserContext]]:
    made = [
        browser.new_context(base_url=server.base_url, viewport={"width": 1400, "height": 860})
        for _ in range(2)
    ]
    for c in made:
        c.set_default_timeout(30_000)
    yield made
    for c in made:
        c.close()


def invite(owner: Page, username: str, role: str) -> None:
    owner.get_by_label("Username or email").fill(username)
    owner.get_by_label("Role", exact=True).select_option(role)
    owner.get_by_role("button", name="Invite").click()
    expect(owner.locator(f"li[data-username='{username}']")).to_contain_text("invited")


def accept_and_open(page: Page, workspace: str) -> None:
    page.goto("/")
    invitations = page.get_by_role("region", name="Shared with me")
    invitations.get_by_role("button", name="Accept").click()
    invitations.get_by_role("link", name=workspace).click()
    page.wait_for_url("**/s/*")


def test_invite_accept_type_watch_revoke(page: Page, other_contexts: list[BrowserContext]) -> None:
    owner = page
    register(owner)
    create_workspace(owner, "pair session")
    wait_for_prompt(owner)
    editor, viewer = (c.new_page() for c in other_contexts)
    editor_name, viewer_name = register(editor), register(viewer)

    owner.get_by_role("button", name="Share").click()
    invite(owner, editor_name, "editor")
    invite(owner, viewer_name, "viewer")
    owner.get_by_role("button", name="Close", exact=True).click()

    accept_and_open(editor, "pair session")
    wait_for_prompt(editor)  # the owner's shell, adopted as the editor's tab
    terminal_type(editor, "echo typed-by-$((40+2))\n")
    expect(owner.locator(".xterm-rows")).to_contain_text("typed-by-42")

    accept_and_open(viewer, "pair session")
    expect(viewer.get_by_text("View only")).to_be_visible()
    expect(viewer.get_by_role("note")).to_contain_text("read-only")
    expect(viewer.locator(".xterm-rows")).to_contain_text("typed-by-42")
    expect(viewer.get_by_role("button", name="Run")).to_be_disabled()
    terminal_type(viewer, "echo viewer-typed\n")  # refused by the server
    terminal_type(owner, "echo owner-$((1+1))\n")
    expect(viewer.locator(".xterm-rows")).to_contain_text("owner-2")
    expect(owner.locator(".xterm-rows")).not_to_contain_text("viewer-typed")

    workspace_url = editor.url
    owner.get_by_role("button", name="Share").click()
    row = owner.locator(f"li[data-username='{editor_name}']")
    row.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    owner.get_by_role("button", name="Close", exact=True).click()
    # The editor's sockets are closed (4403): their page says why and goes to the dashboard.
    expect(editor.get_by_test_id("dashboard-notice")).to_contain_text("removed", timeout=5000)
    expect(editor.get_by_role("heading", name="Your workspaces")).to_be_visible()
    terminal_type(owner, "echo owner-again\n")
    expect(owner.locator(".xterm-rows")).to_contain_text("owner-again")
    editor.goto(workspace_url)
    expect(editor.get_by_role("alert")).to_be_visible()


def test_the_owner_sets_who_may_fork_in_the_share_dialog(page: Page) -> None:
    register(page)
    create_workspace(page, "fork rules")
    uuid = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Share").click()
    policy = page.get_by_label("Who may fork")
    expect(policy).to_have_value("editors")  # the default
    policy.select_option("owner")
    expect(policy).to_be_enabled()
    page.get_by_role("button", name="Close", exact=True).click()
    members = page.request.get(f"/api/sessions/{uuid}/members")
    assert members.ok and members.json()["fork_policy"] == "owner"
    page.get_by_role("button", name="Share").click()
    expect(page.get_by_label("Who may fork")).to_have_value("owner")
