"""Numbered screenshots of a browser test, kept as test artifacts."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page


class Screenshots:
    """Numbered screenshots of one test: ``shots.take("saved")`` -> ``03-saved.png``."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0

    def take(self, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))
        return path
