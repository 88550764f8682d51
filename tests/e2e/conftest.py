"""Fixtures of the browser tests: Chromium (headless), a live server whose sandboxes can start, and a
fresh browser context per test that fails the test on a script error and leaves screenshots in
test-artifacts/e2e/<test-name>/ (the steps a test records, then its last state or the failure).

Needs the built web app (web/dist, made by scripts/setup.sh) and Chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.conftest import LiveServer, start_live_server
from tests.e2e.screenshots import Screenshots

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing_prerequisite() -> str | None:
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        return "web/dist is not built (scripts/setup.sh builds it)"
    if shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = missing_prerequisite()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Lets the page fixture know at teardown whether the test body failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def sandbox_live_server(**overrides: Any) -> Iterator[LiveServer]:
    """A live server whose sandboxes can start (terminals and runs need them): its data dir is
    under /tmp with mode 0711, so sandbox uids can pass through it."""
    data_dir = Path(tempfile.mkdtemp(prefix="cc-e2e-", dir="/tmp"))
    os.chmod(data_dir, 0o711)
    srv, stop = start_live_server("sqlite", data_dir, **overrides)
    try:
        yield srv
    finally:
        stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def server() -> Iterator[LiveServer]:
    with sandbox_live_server() as srv:
        yield srv


@pytest.fixture
def shots(request: pytest.FixtureRequest, page: Page) -> Screenshots:
    screenshots: Screenshots = request.node.e2e_screenshots
    return screenshots


@pytest.fixture
def page(request: pytest.FixtureRequest, browser: Browser, server: LiveServer) -> Iterator[Page]:
    """A fresh browser context on the live server; fails the test on any script error."""
    context = browser.new_context(base_url=server.base_url, viewport={"width": 1400, "height": 860})
    context.set_default_timeout(30_000)
    pg = context.new_page()
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    request.node.e2e_screenshots = screenshots = Screenshots(pg, folder)
    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        # The browser itself logs every 4xx answer ("Failed to load resource"); expected ones
        # (401 before login, 409 on a conflict) are part of the flows under test.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            problems.append(f"console: {msg.text}")

    pg.on("console", on_console)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield pg
    call = getattr(request.node, "report_call", None)
    try:
        screenshots.take("failed" if call is None or call.failed else "end")
    except Exception as exc:  # a crashed page must not hide the test's own failure
        print(f"e2e: no final screenshot: {exc}")
    context.close()
    assert problems == []
