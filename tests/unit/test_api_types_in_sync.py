"""The web app's API types (web/src/api/schema.gen.ts) match the backend's OpenAPI schema: a route or
model changed without running scripts/gen-api-types.sh fails here (STYLE practice 9)."""

from __future__ import annotations

import difflib
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "web" / "src" / "api" / "schema.gen.ts"


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
def test_generated_api_types_match_the_openapi_schema(tmp_path: Path) -> None:
    fresh = tmp_path / "schema.gen.ts"
    subprocess.run(
        [str(ROOT / "scripts" / "gen-api-types.sh"), str(fresh)], check=True, timeout=300
    )
    expected, committed = fresh.read_text(), GENERATED.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "web/src/api/schema.gen.ts (committed)",
            "from the OpenAPI schema now",
        )
    )
    assert not diff, f"web/src/api/schema.gen.ts is stale: run scripts/gen-api-types.sh\n{diff}"
