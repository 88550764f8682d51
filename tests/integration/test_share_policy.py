"""Every workspace route and WebSocket declares the role it needs (services/access.py): a route
added without one fails here, before it can leak a workspace to its collaborators."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

from coolcoding.api.deps import ACCESS_POLICY
from coolcoding.api.ws.auth import WS_POLICY
from coolcoding.app import create_app
from coolcoding.services.access import Role
from tests.conftest import make_settings

# Routes outside any one workspace: the caller's own things, accounts, public links, health.
NOT_A_WORKSPACE = {
    "/api/health/", "/api/health", "/api/templates", "/api/users/me/preferences",
    "/api/sessions/import", "/api/sessions/", "/api/users/register", "/api/users/login",
    "/api/users/logout", "/api/users/me", "/api/users/{user_id:int}", "/api/tokens",
    "/api/tokens/{token_id}", "/api/languages", "/api/executions", "/api/executions/batch",
    "/api/executions/{execution_id}", "/api/executions/{execution_id}/events", "/api/trash",
    "/api/trash/{entry_id}/restore", "/api/trash/{entry_id}", "/api/storage", "/api/shared",
    "/api/invitations", "/api/invitations/{session_uuid}/accept",
    "/api/invitations/{session_uuid}/decline", "/api/public/{token}",
    "/api/public/{token}/file/{path:anypath}", "/api/public/{token}/run",
    "/api/public/{token}/fork",
    # A fork checks its own grants (owner, member, fork link) in SnapshotService.can_fork.
    "/api/sessions/{session_uuid}/fork",
}  # fmt: skip


def declared_roles(dep: Dependant) -> set[Role]:
    found: set[Role] = set()
    if dep.call in ACCESS_POLICY:
        found.add(ACCESS_POLICY[dep.call])
    for sub in dep.dependencies:
        found |= declared_roles(sub)
    return found


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    dependant: Dependant | None
    websocket: bool


def app_routes(tmp_path: Path) -> list[RouteInfo]:
    """Every route of the app with its full path (routers included with prefixes resolved)."""
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    out = []
    for ctx in iter_route_contexts(create_app(settings).router.routes):
        route: Any = ctx.original_route
        if isinstance(route, APIRoute | APIWebSocketRoute):
            out.append(
                RouteInfo(
                    ctx.path,
                    frozenset(getattr(route, "methods", None) or ()),
                    ctx.dependant,
                    isinstance(route, APIWebSocketRoute),
                )
            )
    return out


def http_policy(tmp_path: Path) -> dict[tuple[str, str], Role]:
    """(method, path) -> the role the route declares, for every workspace route."""
    out: dict[tuple[str, str], Role] = {}
    for route in app_routes(tmp_path):
        if not route.websocket and route.path.startswith("/api/") and route.dependant:
            roles = declared_roles(route.dependant)
            for method in route.methods:
                if roles:
                    out[(method, route.path)] = min(roles)
    return out


def test_every_api_route_declares_a_policy(tmp_path: Path) -> None:
    missing, double = [], []
    checked = 0
    for route in app_routes(tmp_path):
        if route.websocket or not route.path.startswith("/api/") or route.dependant is None:
            continue
        checked += 1
        roles = declared_roles(route.dependant)
        if len(roles) > 1:
            double.append(route.path)
        if not roles and route.path not in NOT_A_WORKSPACE:
            missing.append(f"{sorted(route.methods)} {route.path}")
    assert checked > 60
    assert not missing, f"workspace routes without an access policy: {missing}"
    assert not double, f"routes declaring two roles: {double}"


def test_every_websocket_declares_a_policy(tmp_path: Path) -> None:
    sockets = [r.path for r in app_routes(tmp_path) if r.websocket]
    assert sockets
    assert set(sockets) == set(WS_POLICY), set(sockets) ^ set(WS_POLICY)


def test_the_policy_of_the_main_routes(tmp_path: Path) -> None:
    p = http_policy(tmp_path)
    W = "/api/workspace/{session_uuid}"
    S = "/api/sessions/{session_uuid}"
    assert p[("GET", f"{W}/files")] is Role.VIEWER
    assert p[("GET", f"{W}/file/{{path:anypath}}")] is Role.VIEWER
    assert p[("POST", f"{W}/file/{{path:anypath}}")] is Role.EDITOR
    assert p[("PUT", f"{W}/upload/{{path:anypath}}")] is Role.EDITOR
    assert p[("POST", f"{S}/run")] is Role.EDITOR
    assert p[("POST", f"{S}/sandbox/start")] is Role.EDITOR
    assert p[("GET", f"{S}/terminals")] is Role.VIEWER
    assert p[("POST", f"{S}/members")] is Role.ADMIN
    assert p[("POST", f"{S}/links")] is Role.ADMIN
    assert p[("DELETE", S)] is Role.OWNER
    assert p[("POST", f"{S}/transfer")] is Role.OWNER
    assert p[("PUT", f"{S}/terminals/{{terminal_id}}/private")] is Role.OWNER
    assert p[("PUT", f"{S}/fork-policy")] is Role.ADMIN
    # The preview is the running program as a visitor uses it: every member, any method, and
    # its WebSockets (a public link has no preview at all).
    preview = f"{S}/preview/{{port}}/{{path:path}}"
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        assert p[(method, preview)] is Role.VIEWER, method
    assert WS_POLICY[preview] is Role.VIEWER
    assert not [r.path for r in app_routes(tmp_path) if r.path.startswith("/api/public/")
                and "preview" in r.path]  # fmt: skip
