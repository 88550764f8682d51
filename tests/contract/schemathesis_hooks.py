"""Schemathesis hooks for the contract test: a Bearer token that outlives the fuzzer's own calls.

The fuzzer calls ``POST /api/users/logout`` (and may delete the account), which revokes the token
every later request would carry; a fresh account is then registered and its token used instead,
so the rest of the run keeps testing authenticated routes instead of collecting 401s.
Loaded by the CLI through ``SCHEMATHESIS_HOOKS``; the server is ``COOLCODING_CONTRACT_BASE_URL``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import httpx
import schemathesis

BASE_URL = os.environ.get("COOLCODING_CONTRACT_BASE_URL", "")
_state: dict[str, str | None] = {"token": os.environ.get("COOLCODING_CONTRACT_TOKEN")}


def _register() -> str:
    name = f"st{secrets.token_hex(5)}"
    r = httpx.post(
        f"{BASE_URL}/api/users/register",
        json={
            "username": name,
            "email": f"{name}@example.com",
            "password": "correct horse battery",
        },
        timeout=30,
    )
    r.raise_for_status()
    return str(r.json()["token"])


@schemathesis.auth(refresh_interval=None)
class FreshBearer:
    """The current token; a new account's after the fuzzer revoked it."""

    def get(self, case: Any, ctx: Any) -> str:
        token = _state["token"]
        if token is None:
            token = _state["token"] = _register()
        return token

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    revoked = (case.method.upper(), case.operation.path) in {
        ("POST", "/api/users/logout"),
        ("DELETE", "/api/users/me"),
    }
    if revoked and response.status_code == 204:
        _state["token"] = None
