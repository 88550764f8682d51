"""The OpenAPI document with the limits this server was configured with.

Pydantic models state the fixed rules; the limits that are settings (the password's minimum
length, the largest judge limits a job may ask for) are written into the document when it is
built, so the document a client reads is the rule the services enforce.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from coolcoding.execution.judge import LIMIT_FIELDS
from coolcoding.settings import Settings


def configured_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``schema`` with the limits of ``settings`` written into its models (in place)."""
    models = schema.get("components", {}).get("schemas", {})
    register = models.get("RegisterIn", {}).get("properties", {})
    if "password" in register:
        register["password"]["minLength"] = settings.password_min_length
    limits = models.get("LimitsIn", {}).get("properties", {})
    for name in LIMIT_FIELDS:
        if name in limits:
            maximum = getattr(settings, f"exec_max_{name}")
            for option in limits[name].get("anyOf", [limits[name]]):
                if option.get("type") in ("integer", "number"):
                    option["maximum"] = maximum
    return schema


def install_openapi(app: FastAPI, settings: Settings) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = configured_limits(schema, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
