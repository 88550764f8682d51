"""Finding 13 (headers): every response carries a Content-Security-Policy, frame-ancestors 'none' /
X-Frame-Options, nosniff and a Referrer-Policy; /docs, /redoc and the OpenAPI document can be
turned off (and are off in production)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from coolcoding.app import create_app
from tests.conftest import LiveServer, make_settings


def assert_secure(r: httpx.Response) -> None:
    csp = r.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, (r.request.url, r.status_code, csp)
    assert "default-src 'self'" in csp
    assert r.headers.get("x-frame-options") == "DENY"
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") in ("same-origin", "no-referrer")


def test_every_kind_of_response_has_the_headers(sqlite_server: LiveServer) -> None:
    with httpx.Client(base_url=sqlite_server.base_url) as c:
        responses = [
            c.get("/api/health/"),  # API
            c.get("/"),  # the SPA (or its "not built" answer)
            c.get("/some/client/route"),
            c.get("/api/sessions/"),  # 401
            c.get("/api/no-such-route"),  # 404
            c.post("/api/users/login", json={}),  # 422
            c.post("/api/users/login", content=b"x" * (64 << 20)),  # 413 from the body guard
            c.post("/api/users/login", json={}, headers={"Origin": "https://evil.example"}),  # 403
            c.put("/api/health/"),  # 405
        ]
        index = c.get("/")
        if index.status_code == 200:  # the built SPA: its scripts and styles too
            for asset in sorted(set(_assets(index.text)))[:4]:
                responses.append(c.get(asset))
    statuses = {r.status_code for r in responses}
    assert {200, 401, 403, 404, 405, 413, 422} <= statuses, statuses
    for r in responses:
        assert_secure(r)


def _assets(html: str) -> list[str]:
    import re

    return re.findall(r'(?:src|href)="(/assets/[^"]+)"', html)


def test_the_policy_allows_only_this_origin_for_scripts(sqlite_server: LiveServer) -> None:
    csp = httpx.get(f"{sqlite_server.base_url}/").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'"  # no inline script, no eval, no CDN
    assert directives["object-src"] == "'none'"
    assert "blob:" in directives["worker-src"]  # Monaco's workers


@pytest.mark.parametrize(
    ("overrides", "served"),
    [
        ({}, True),  # test/development: on
        ({"environment": "production", "cookie_secure": True}, False),
        ({"docs_enabled": False}, False),
        ({"environment": "production", "cookie_secure": True, "docs_enabled": True}, True),
    ],
)
def test_docs_can_be_turned_off(tmp_path: Path, overrides: dict[str, object], served: bool) -> None:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db", **overrides)
    app = create_app(settings)
    c = TestClient(app)  # not started (no lifespan): these routes need no platform
    openapi = c.get("/api/openapi.json")
    docs = c.get("/docs")
    redoc = c.get("/redoc")
    if served:
        assert openapi.status_code == 200 and openapi.json()["openapi"]
        assert "swagger-ui" in docs.text and "redoc" in redoc.text
    else:
        assert openapi.status_code == 404
        assert "swagger-ui" not in docs.text and "redoc" not in redoc.text.lower()
    assert_secure(docs)
    # The schema stays available to code (the web's type generation calls openapi() directly).
    assert app.openapi()["paths"]
