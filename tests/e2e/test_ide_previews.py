"""Previews (images, SVG with a script, sanitized Markdown), per-user settings and the phone layout,
in Chromium against a live server (screenshots in test-artifacts/e2e/)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.ide_actions import create_workspace, editor_text, open_file, register, tree_item
from tests.e2e.ide_files_actions import put_file, tiny_png
from tests.e2e.screenshots import Screenshots

pytestmark = [pytest.mark.e2e]

EVIL_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20" '
    "onload=\"window.parent.__svgRan = 'onload'\">"
    "<script>window.__svgRan = 'script'; window.parent.__svgRan = 'script'</script>"
    '<rect width="40" height="20" fill="blue"/></svg>'
)
EVIL_MD = (
    "# Release notes\n\nSome **bold** text.\n\n"
    "<script>window.__mdRan = 'script'</script>\n\n"
    '<img src="nothing.png" onerror="window.__mdRan = \'onerror\'">\n\n'
    "[click](javascript:window.__mdRan='link')\n"
)


def test_image_and_svg_previews_never_run_the_svgs_script(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e images")
    put_file(page, uuid, "img/logo.png", tiny_png(4, 3))
    put_file(page, uuid, "img/evil.svg", EVIL_SVG)
    expect(tree_item(page, "img")).to_be_visible()
    tree_item(page, "img").click()
    tree_item(page, "img/logo.png").click()
    img = page.locator(".image-preview img")
    expect(img).to_be_visible()
    expect(page.locator(".image-preview figcaption")).to_contain_text("4 \u00d7 3")
    assert (img.get_attribute("src") or "").startswith("blob:")
    shots.take("png")
    tree_item(page, "img/evil.svg").click()
    expect(page.locator(".image-preview figcaption")).to_contain_text("40 \u00d7 20")
    assert page.evaluate("() => window.__svgRan") is None
    # the SVG is never part of the page's DOM
    assert page.locator(".editor-area svg rect").count() == 0
    shots.take("svg")
    # opened directly, the raw file is an attachment in a sandbox, not a page on our origin
    r = page.request.get(f"/api/workspace/{uuid}/download/img/evil.svg")
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert "svg" not in r.headers["content-type"]


def test_markdown_preview_side_by_side_is_sanitized(page: Page, shots: Screenshots) -> None:
    register(page)
    uuid = create_workspace(page, "e2e markdown")
    put_file(page, uuid, "NOTES.md", EVIL_MD)
    tree_item(page, "NOTES.md").click()
    expect(page.locator(".monaco-editor .view-lines")).to_be_visible()
    page.get_by_role("button", name="Open preview to the side").click()
    preview = page.get_by_label("Markdown preview")
    expect(preview.locator("h1")).to_have_text("Release notes")
    expect(preview.locator("strong")).to_have_text("bold")
    # editor and preview side by side
    editor_box = page.locator(".editor-body .monaco-editor").bounding_box()
    preview_box = preview.bounding_box()
    assert (
        editor_box and preview_box and preview_box["x"] >= editor_box["x"] + editor_box["width"] - 2
    )
    page.wait_for_timeout(300)  # let a (would-be) image error fire
    assert preview.locator("script").count() == 0
    assert preview.locator("[onerror]").count() == 0
    assert "javascript:" not in preview.inner_html()
    assert page.evaluate("() => window.__mdRan") is None
    shots.take("preview")
    # the preview follows the edits
    page.locator(".monaco-editor .view-lines").click()
    page.keyboard.press("Control+Home")
    page.keyboard.type("## Added line\n")
    expect(preview.locator("h2")).to_contain_text("Added line")


def test_settings_are_saved_per_user_and_applied(page: Page, shots: Screenshots) -> None:
    register(page)
    create_workspace(page, "e2e settings")
    page.get_by_role("button", name="Settings", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Font size").fill("20")
    dialog.get_by_label("Tab size").select_option("2")
    dialog.get_by_label("Word wrap").check()
    dialog.get_by_label("Key bindings").select_option("vim")
    dialog.get_by_label("Theme").select_option("light")
    shots.take("dialog")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    prefs = page.request.get("/api/users/me/preferences").json()
    assert prefs == {
        "font_size": 20,
        "tab_size": 2,
        "word_wrap": True,
        "key_bindings": "vim",
        "theme": "light",
    }
    page.reload()
    open_file(page, "main.py")
    lines = page.locator(".monaco-editor .view-lines")
    expect(page.get_by_label("Vim mode")).to_be_visible()
    assert lines.evaluate("el => getComputedStyle(el).fontSize") == "20px"
    assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
    # vim: in normal mode "gg" goes to the top and "x" deletes a character instead of typing it
    lines.click()
    page.keyboard.press("Escape")
    page.keyboard.type("ggx")
    expect(lines).to_contain_text("ef greet")
    assert editor_text(page).startswith("ef greet")
    shots.take("vim")
    # a bad value is refused by the API
    r = page.request.put("/api/users/me/preferences", data={"font_size": 400})
    assert r.status in (400, 422)


def test_phone_layout_dashboard_fits_and_explorer_is_a_drawer(
    page: Page, shots: Screenshots
) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    register(page)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    shots.take("dashboard")
    create_workspace(page, "e2e phone")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    tree = tree_item(page, "main.py")
    expect(tree).not_to_be_in_viewport()
    page.get_by_role("button", name="Show files").click()
    expect(tree).to_be_in_viewport()
    shots.take("drawer")
    tree.click()  # opening a file closes the drawer
    expect(tree).not_to_be_in_viewport()
    editor = page.locator(".editor-area").bounding_box()
    terminal = page.locator(".terminal-panel, .xterm").first.bounding_box()
    assert editor and terminal
    assert editor["width"] >= 380 and editor["height"] >= 300
    assert terminal["y"] >= editor["y"] + editor["height"] - 2  # stacked below the editor
    shots.take("editor-and-terminal")
