"""The Run panel and the preview in Chromium: input typed while a program runs, Stop killing a
busy loop and its children, build output apart from the program's, a figure inline, a server's
port in the Preview tab, the notice when the sandbox stops, and the session's terminals listed
from any tab. Screenshots in test-artifacts/e2e/<test>/."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import (
    create_workspace,
    open_file,
    register,
    terminal_type,
    tree_item,
    wait_for_prompt,
)
from tests.e2e.screenshots import Screenshots
from tests.integration.test_preview import SERVER_PY

pytestmark = pytest.mark.sandbox


def put_file(page: Page, uuid: str, path: str, content: str) -> None:
    r = page.request.post(f"/api/workspace/{uuid}/file/{path}", data={"content": content})
    assert r.status in (200, 201), r.text()
    expect(tree_item(page, path)).to_be_visible()


def run_file(page: Page, path: str) -> None:
    open_file(page, path)
    page.get_by_role("button", name="Run", exact=True).click()


def test_input_stop_build_output_and_figures(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e run panel")
    out = page.locator(".run-output")

    put_file(page, uuid, "ask.py", 'name = input("name? ")\nprint("hello", name)\n')
    run_file(page, "ask.py")
    expect(out).to_contain_text("name?", timeout=60_000)
    box = page.get_by_label("Program input")
    box.fill("Ada")
    shots.take("typing-input")
    box.press("Enter")
    expect(out).to_contain_text("hello Ada")
    result = page.get_by_test_id("run-result")
    expect(result).to_contain_text("exit code 0")
    # The result line is a line of its own, not glued to the program's last output.
    assert result.evaluate("e => getComputedStyle(e).display") == "block"
    shots.take("input-answered")

    put_file(
        page,
        uuid,
        "spin.py",
        "import subprocess\n"
        "kids = [subprocess.Popen(['sleep', '1000']) for _ in range(3)]\n"
        "open('kids.pid', 'w').write(' '.join(str(k.pid) for k in kids))\n"
        "print('spinning', flush=True)\nwhile True:\n    pass\n",
    )
    run_file(page, "spin.py")
    expect(out).to_contain_text("spinning", timeout=60_000)
    shots.take("busy-loop-running")
    page.get_by_role("button", name="Stop the run").click()
    expect(page.get_by_test_id("run-result")).to_contain_text(
        "Stopped: the program and everything it started were killed"
    )
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible()
    shots.take("stopped")
    put_file(
        page,
        uuid,
        "check.py",
        "import os\nalive = []\nfor p in open('kids.pid').read().split():\n"
        "    try:\n        os.kill(int(p), 0); alive.append(p)\n"
        "    except ProcessLookupError:\n        pass\nprint('alive children:', len(alive))\n",
    )
    run_file(page, "check.py")
    expect(out).to_contain_text("alive children: 0", timeout=60_000)

    put_file(page, uuid, "bad.c", "int main() { nope; }\n")
    run_file(page, "bad.c")
    build = page.locator(".out-build")
    expect(build).to_contain_text("nope", timeout=60_000)
    expect(page.get_by_test_id("run-result")).to_contain_text("compilation error")
    assert out.inner_text().count("bad.c:1:14: error") == 1  # shown once, not twice
    shots.take("build-output")

    put_file(
        page,
        uuid,
        "plot.py",
        "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9, 16])\nplt.title('squares')\n"
        "plt.show()\nprint('plotted')\n"
        "open('evil.svg', 'w').write(\"<svg xmlns='http://www.w3.org/2000/svg' width='40' "
        "height='40' onload='alert(1)'><script>alert(2)</script><circle r='20' cx='20' "
        "cy='20'/></svg>\")\n",
    )
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    run_file(page, "plot.py")
    figures = page.locator("img.out-figure")
    expect(figures).to_have_count(2, timeout=60_000)
    expect(out).to_contain_text("plotted")
    assert figures.first.evaluate("e => e.naturalWidth") > 100
    expect(page.locator("figcaption")).to_have_text("evil.svg")
    page.wait_for_timeout(500)
    assert dialogs == []  # the SVG's script never ran (an <img>, not markup)
    shots.take("figure-inline")


def test_preview_of_a_server_and_the_sandbox_state(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e preview")
    put_file(page, uuid, "app.py", SERVER_PY)
    run_file(page, "app.py")
    page.get_by_role("tab", name="Preview").click()
    open_preview = page.get_by_role("button", name="Open preview :8000")
    expect(open_preview).to_be_visible(timeout=60_000)
    open_preview.click()
    frame = page.frame_locator("iframe.preview-frame")
    expect(frame.locator("h1")).to_have_text("preview works", timeout=30_000)
    shots.take("preview")
    # A WebSocket of the previewed app, from the browser (its cookie and Origin), proxied too.
    ws_url = page.url.split("/s/")[0].replace("http", "ws", 1)
    echoed = page.evaluate(
        """(url) => new Promise((ok, fail) => {
            const ws = new WebSocket(url);
            ws.onopen = () => ws.send("hi from chromium");
            ws.onmessage = (e) => { ok(e.data); ws.close(); };
            ws.onerror = () => fail("websocket error");
            setTimeout(() => fail("timeout"), 20000);
        })""",
        f"{ws_url}/api/sessions/{uuid}/preview/8000/ws",
    )
    assert echoed == "echo:hi from chromium"

    # The session's terminals, listed from this tab (one opened by the IDE at start).
    page.get_by_role("button", name="All terminals").click()
    expect(page.get_by_test_id("session-terminal").first).to_be_visible(timeout=30_000)
    shots.take("all-terminals")
    page.keyboard.press("Escape")
    page.mouse.click(5, 400)

    # Stopped from elsewhere: the notice says why and what was kept; the status bar follows.
    r = page.request.post(f"/api/sessions/{uuid}/sandbox/stop")
    assert r.status == 200, r.text()
    notice = page.get_by_test_id("sandbox-notice")
    expect(notice).to_contain_text("stopped by the user", timeout=30_000)
    expect(notice).to_contain_text("Kept: every file")
    expect(notice).to_contain_text("/tmp")
    expect(page.locator(".status-bar")).to_contain_text("stopped")
    # The server's run ended with the sandbox, and says so.
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Output").click()
    expect(page.get_by_test_id("run-result")).to_contain_text(
        "sandbox stopped while the program ran"
    )
    shots.take("sandbox-stopped")


def test_stdin_from_a_file_and_a_run_past_the_judges_ten_seconds(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    uuid = create_workspace(page, "e2e run stdin file")
    out = page.locator(".run-output")
    put_file(page, uuid, "numbers.txt", "3\n4\n5\n")
    put_file(
        page,
        uuid,
        "total.py",
        "import sys, time\nnums = [int(x) for x in sys.stdin.read().split()]\n"
        "print('total', sum(nums), flush=True)\n"
        "if len(sys.argv) < 2 and sum(nums) == 12:\n"
        "    start = time.monotonic()\n    time.sleep(12)\n"
        "    print(f'still running after {time.monotonic() - start:.0f} s')\n",
    )
    open_file(page, "total.py")
    page.get_by_role("tab", name="Output").click()
    page.get_by_label("stdin from file").fill("numbers.txt")
    shots.take("stdin-from-file")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(out).to_contain_text("total 12", timeout=60_000)
    shots.take("long-run-going")
    # Session runs have no 10 s wall cap (judge limits are unchanged).
    expect(out).to_contain_text("still running after 12 s", timeout=60_000)
    expect(page.get_by_test_id("run-result")).to_contain_text("exit code 0")
    shots.take("long-run-finished")


def test_a_terminal_of_another_browser_tab_is_listed_and_reopened_here(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    create_workspace(page, "e2e two tabs")
    wait_for_prompt(page)
    terminal_type(page, "echo from-tab-a-$((6*7))\n")
    expect(page.locator(".xterm-rows")).to_contain_text("from-tab-a-42", timeout=30_000)
    other = page.context.new_page()
    try:
        other.goto(page.url)
        wait_for_prompt(other)  # this tab's own terminal
        shots.page = other
        other.get_by_role("button", name="All terminals").click()
        entry = other.get_by_test_id("session-terminal").filter(has_text="other tab")
        expect(entry).to_have_count(1, timeout=30_000)
        expect(other.get_by_test_id("session-terminal")).to_have_count(2)
        shots.take("other-tab-lists-both-terminals")
        entry.get_by_role("button", name="Open here").click()
        # Reattached with its scrollback: the first tab's output is here.
        expect(other.locator(".xterm-rows").filter(has_text="from-tab-a-42")).to_have_count(
            1, timeout=30_000
        )
        shots.take("reopened-in-the-other-tab")
    finally:
        shots.page = page
        other.close()


def test_npm_install_in_the_terminal_lands_in_the_workspace(page: Page, shots: Screenshots) -> None:
    """No network in tests: a package packed in the session, installed offline."""
    register(page)
    create_workspace(page, "e2e npm")
    wait_for_prompt(page)
    terminal_type(
        page,
        'mkdir -p pkgsrc && echo \'{"name":"hello-e2e","version":"1.0.0"}\' > '
        "pkgsrc/package.json && echo \"module.exports='hi from '+'node_modules'\" > "
        "pkgsrc/index.js && npm pack ./pkgsrc --silent && npm install --offline --no-audit "
        "--no-fund ./hello-e2e-1.0.0.tgz && node -e \"console.log(require('hello-e2e'))\"\n",
    )
    expect(page.locator(".xterm-rows")).to_contain_text("hi from node_modules", timeout=90_000)
    # The sync brings node_modules into the workspace (kept across a sandbox stop).
    expect(tree_item(page, "node_modules")).to_be_visible(timeout=30_000)
    shots.take("npm-installed")


@pytest.mark.parametrize(
    "template, entry, heading",
    [
        ("Flask web app", "app.py", "Hello from Flask!"),
        ("Express web app", "index.js", "Hello from Express!"),
    ],
)
def test_a_web_app_template_runs_offline_and_shows_in_the_preview(
    page: Page, shots: Screenshots, template: str, entry: str, heading: str
) -> None:
    """The Flask and Express starters run as created, with the session's network off: their
    frameworks come from the host's Debian packages (python3-flask, node-express)."""
    register(page)
    page.select_option("#new-session-language", label=template)
    create_workspace(page, f"e2e {template}")
    expect(tree_item(page, entry)).to_be_visible(timeout=20_000)
    run_file(page, entry)
    page.get_by_role("tab", name="Preview").click()
    open_preview = page.get_by_role("button", name="Open preview :8000")
    expect(open_preview).to_be_visible(timeout=60_000)
    open_preview.click()
    frame = page.frame_locator("iframe.preview-frame")
    expect(frame.locator("h1")).to_have_text(heading, timeout=30_000)
    shots.take(entry)
