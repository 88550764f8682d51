"""The web app's WebSocket and run-event types (web/src/api/ws.gen.ts) match the message models of
src/coolcoding/schemas/ws.py: a message changed without running scripts/gen-ws-types.sh fails here."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "web" / "src" / "api" / "ws.gen.ts"


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_generated_ws_types_match_the_message_models(tmp_path: Path) -> None:
    fresh = tmp_path / "ws.gen.ts"
    subprocess.run([str(ROOT / "scripts" / "gen-ws-types.sh"), str(fresh)], check=True, timeout=300)
    expected, committed = fresh.read_text(), GENERATED.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "web/src/api/ws.gen.ts (committed)",
            "from schemas/ws.py now",
        )
    )
    assert not diff, f"web/src/api/ws.gen.ts is stale: run scripts/gen-ws-types.sh\n{diff}"
