"""Finding 5 in a real browser: after vim ran, a reload (reattach + scrollback replay) must not type
xterm.js's answers to vim's old queries into the shell (they ran as ``2RR0;276;0c...``)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import create_workspace, register, terminal_type, wait_for_prompt

pytestmark = [pytest.mark.e2e, pytest.mark.sandbox]


def test_a_reload_after_vim_types_nothing_into_the_shell(page: Page) -> None:
    register(page)
    uuid = create_workspace(page, "e2e replay")
    wait_for_prompt(page)
    # vim asks the terminal for the cursor position, its version and colours at start-up;
    # the printf asks the same things again, in case this vim build does not.
    terminal_type(
        page, "printf '\\e[6n\\e[>c\\e]10;?\\a\\e]11;?\\a'; read -rs -t 1 -N 4096 _; echo\n"
    )
    page.wait_for_timeout(2500)  # read's second is over: what follows is run, not read
    terminal_type(page, "echo asked-$((1+1))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("asked-2")
    terminal_type(page, "vim -N -u NONE\n")
    expect(page.locator(".xterm-rows")).to_contain_text("~", timeout=30_000)
    page.wait_for_timeout(500)
    terminal_type(page, ":q\n")
    terminal_type(page, "echo vim-done-$((1+1))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("vim-done-2")

    page.reload()
    expect(page.locator(".xterm-rows")).to_contain_text("vim-done-2", timeout=60_000)
    page.wait_for_timeout(1000)  # time for xterm.js to answer the replay, were it asked
    terminal_type(page, "echo after-$((2+3))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("after-5")

    def commands() -> list[str]:
        got = page.request.get(f"/api/sessions/{uuid}/commands").json()
        return [c["command"] for c in got]

    page.wait_for_timeout(500)
    recorded = commands()
    assert recorded[0] == "echo after-$((2+3))", recorded
    assert not any("276" in c or "rgb:" in c for c in recorded), recorded
