"""The IDE's files in and out, search, quick open, command palette, templates, previews, settings
and the phone layout, in Chromium against a live server (screenshots in test-artifacts/e2e/)."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import create_workspace, open_file, register, tree_item
from tests.e2e.ide_files_actions import put_file, workspace_paths
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e]


def test_upload_by_button_and_drop_shows_progress_and_per_file_errors(
    page: Page, shots: Screenshots
) -> None:
    register(page)
    uuid = create_workspace(page, "e2e upload")
    expect(tree_item(page, "main.py")).to_be_visible()
    too_big = b"x" * (5 * 1024 * 1024 + 1)
    page.set_input_files(
        "[data-testid=upload-files-input]",
        files=[
            {"name": "data.csv", "mimeType": "text/csv", "buffer": b"a,b\n1,2\n"},
            {"name": "huge.bin", "mimeType": "application/octet-stream", "buffer": too_big},
        ],
    )
    panel = page.get_by_role("status", name="Uploads")
    expect(panel).to_contain_text("Uploaded 1 of 2, 1 failed")
    expect(panel.locator("[data-path='huge.bin'] .upload-error")).to_contain_text("limit")
    expect(panel.locator("[data-path='data.csv'] progress")).to_have_attribute("value", "8")
    expect(tree_item(page, "data.csv")).to_be_visible()
    shots.take("uploaded-with-one-error")
    # drag and drop from the desktop onto the tree
    page.evaluate(
        """() => {
          const dt = new DataTransfer();
          dt.items.add(new File(["dropped!\\n"], "dropped.txt", { type: "text/plain" }));
          const target = document.querySelector(".tree-scroll");
          for (const type of ["dragenter", "dragover", "drop"]) {
            target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
          }
        }"""
    )
    expect(tree_item(page, "dropped.txt")).to_be_visible()
    assert {"data.csv", "dropped.txt", "main.py"} <= workspace_paths(page, uuid)
    assert "huge.bin" not in workspace_paths(page, uuid)
    shots.take("dropped")


def test_folder_upload_keeps_the_folder_structure(page: Page, tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path)) / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "util.py").write_text("X = 1\n")
    (root / "README.md").write_text("# proj\n")
    register(page)
    uuid = create_workspace(page, "e2e folder upload")
    page.set_input_files("[data-testid=upload-folder-input]", str(root))
    expect(page.get_by_role("status", name="Uploads")).to_contain_text("Uploaded 2 of 2")
    assert {"proj/src/util.py", "proj/README.md"} <= workspace_paths(page, uuid)


def test_zip_export_download_and_new_workspace_from_zip(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e zip")
    expect(tree_item(page, "main.py")).to_be_visible()
    put_file(page, uuid, "pkg/mod.py", "VALUE = 42\n")
    expect(tree_item(page, "pkg")).to_be_visible()
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download workspace as zip").click()
    data = open(dl.value.path(), "rb").read()
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert {"main.py", "pkg/", "pkg/mod.py"} <= names
    # a single file
    open_file(page, "main.py")
    page.keyboard.press("Control+Shift+P")
    page.keyboard.type("download the open")
    with page.expect_download() as one:
        page.keyboard.press("Enter")
    assert open(one.value.path(), "rb").read().startswith(b"def greet")
    # the zip becomes a new workspace from the dashboard
    page.goto("/")
    page.fill("#new-session-name", "from zip")
    page.set_input_files(
        "[data-testid=new-from-zip-input]",
        files=[{"name": "proj.zip", "mimeType": "application/zip", "buffer": data}],
    )
    page.wait_for_url(re.compile(r"/s/[0-9a-f-]+$"))
    expect(tree_item(page, "pkg")).to_be_visible()
    shots.take("imported")
    # an archive with a path traversal entry is refused with a clear message
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ok.txt", "x")
        z.writestr("../../evil.txt", "x")
    page.goto("/")
    page.set_input_files(
        "[data-testid=new-from-zip-input]",
        files=[{"name": "evil.zip", "mimeType": "application/zip", "buffer": buf.getvalue()}],
    )
    expect(page.get_by_role("alert")).to_contain_text("unsafe path")
    shots.take("evil-zip-refused")


def test_search_groups_results_and_jumps_to_the_line(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e search")
    expect(tree_item(page, "main.py")).to_be_visible()
    put_file(page, uuid, "app/models.py", "\n" * 29 + "class Needle:\n    pass\n")
    put_file(page, uuid, "app/views.py", "from .models import Needle\nneedle = Needle()\n")
    put_file(page, uuid, "notes.txt", "a lowercase needle only\n")
    page.keyboard.press("Control+Shift+F")
    page.get_by_label("Search text").fill("Needle")
    results = page.locator(".search-file")
    expect(results).to_have_count(3)
    expect(page.locator(".search-summary")).to_contain_text("4 results in 3 files")
    page.get_by_role("button", name="Match case").click()
    expect(page.locator(".search-summary")).to_contain_text("3 results in 2 files")
    page.get_by_label("Files to include").fill("*models*")
    expect(results).to_have_count(1)
    shots.take("results")
    page.locator(".search-match").first.click()
    expect(page.locator(".editor-tab.is-active")).to_contain_text("models.py")
    expect(page.locator(".status-bar")).to_contain_text("Ln 30")
    shots.take("jumped")


def test_search_shows_the_first_page_and_loads_more_on_demand(
    page: Page, shots: Screenshots
) -> None:
    """The first page (search_page_results, 500 lines) shows; "Load more results" appends the
    next page, continuing inside the file the first page stopped in; a new search resets."""
    register(page)
    uuid = create_workspace(page, "e2e search pages")
    expect(tree_item(page, "main.py")).to_be_visible()
    put_file(page, uuid, "big.txt", "".join(f"needle {i}\n" for i in range(1, 521)))
    put_file(page, uuid, "zz_last.txt", "the last needle\n")
    page.keyboard.press("Control+Shift+F")
    page.get_by_label("Search text").fill("needle")
    summary = page.locator(".search-summary")
    expect(summary).to_contain_text("500 results in 1 file (more available)")
    big = page.locator(".search-file[data-path='big.txt'] .search-match")
    expect(big).to_have_count(500)
    expect(page.locator(".search-file[data-path='zz_last.txt']")).to_have_count(0)
    more = page.get_by_role("button", name="Load more results")
    more.click()
    expect(summary).to_contain_text("521 results in 2 files")
    expect(summary).not_to_contain_text("more available")
    # Page 2: the rest of big.txt joined to its group, then the next file.
    expect(page.locator(".search-file")).to_have_count(2)
    expect(big).to_have_count(520)
    expect(big.last).to_contain_text("needle 520")
    expect(page.locator(".search-file[data-path='zz_last.txt']")).to_contain_text("the last needle")
    expect(more).to_have_count(0)
    shots.take("loaded-more")
    page.locator(".search-file[data-path='big.txt'] .search-match", has_text="needle 510").click()
    expect(page.locator(".editor-tab.is-active")).to_contain_text("big.txt")
    # A new search starts again at its first page.
    page.get_by_label("Search text").fill("needle 5")
    expect(summary).to_have_text("32 results in 1 file")  # 5, 50-59, 500-520


def test_quick_open_and_command_palette(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e palette")
    put_file(page, uuid, "src/deep/component_helper.py", "x = 1\n")
    put_file(page, uuid, "src/other.py", "y = 2\n")
    expect(tree_item(page, "src")).to_be_visible()
    page.keyboard.press("Control+p")
    page.keyboard.type("comphelp")
    expect(page.locator(".palette-item").first).to_have_attribute(
        "data-path", "src/deep/component_helper.py"
    )
    shots.take("quick-open")
    page.keyboard.press("Enter")
    expect(page.locator(".editor-tab.is-active")).to_contain_text("component_helper.py")
    page.keyboard.press("Control+Shift+P")
    items = page.locator(".palette-item")
    expect(items.filter(has_text="Search in files")).to_contain_text("Ctrl+Shift+F")
    expect(items.filter(has_text="Go to file")).to_contain_text("Ctrl+P")
    shots.take("commands")
    page.keyboard.type("settings")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_contain_text("Key bindings")


@pytest.mark.parametrize(
    "template, expected",
    [
        ("Rust", {"main.rs"}),
        ("Java", {"Main.java"}),
        ("Flask web app", {"app.py", "requirements.txt"}),
    ],
)
def test_template_picker_creates_the_right_starter_files(
    page: Page, template: str, expected: set[str]
) -> None:
    register(page)
    page.select_option("#new-session-language", label=template)
    uuid = create_workspace(page, f"e2e {template}")
    for path in expected:
        expect(tree_item(page, path)).to_be_visible(timeout=20_000)  # a new workspace under load
    assert workspace_paths(page, uuid) == expected
