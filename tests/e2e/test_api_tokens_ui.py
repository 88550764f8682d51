"""API tokens in the UI: create one on the dashboard (shown once), use it on the
Judge0-compatible API, revoke it (the API refuses it then)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer
from tests.e2e.ide_actions import register

pytestmark = [pytest.mark.e2e]


def test_create_use_and_revoke_an_api_token(page: Page, server: LiveServer) -> None:
    register(page)
    page.get_by_placeholder("Token name").fill("grader")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_test_id("new-token").inner_text()
    assert token.startswith("cct_")
    tokens = page.get_by_role("list", name="Your API tokens")
    expect(tokens).to_contain_text("grader")
    url = server.base_url + "/judge0/languages"
    assert httpx.get(url, headers={"X-Auth-Token": token}).status_code == 200
    page.get_by_role("button", name="Revoke grader").click()
    expect(page.get_by_text("No API tokens yet.")).to_be_visible()
    assert httpx.get(url + "/71", headers={"X-Auth-Token": token}).status_code == 401
