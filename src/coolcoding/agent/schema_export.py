"""JSON Schema of the agent's messages, generated from the TypedDicts in ``messages.py``.

The input for a TypeScript (or any other) generator; written here rather than taken from
pydantic because pydantic refuses ``typing.TypedDict`` before Python 3.12 and the agent must
stay stdlib-only. ``python -m coolcoding.agent.schema_export`` prints the whole protocol.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from coolcoding.agent import messages
from coolcoding.agent.schema_check import _hints

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    Any: {},
}


def json_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """Schema of ``tp``; TypedDicts go to ``defs`` and are referenced by name."""
    if isinstance(tp, type) and typing.is_typeddict(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder: recursion-safe
            hints = _hints(tp)
            defs[name] = {
                "type": "object",
                "properties": {k: json_schema(v, defs) for k, v in hints.items()},
                "required": sorted(getattr(tp, "__required_keys__", ())),
                "additionalProperties": False,
            }
            if tp.__doc__ and not tp.__doc__.startswith(name + "("):
                defs[name]["description"] = " ".join(tp.__doc__.split())
        return {"$ref": f"#/$defs/{name}"}
    origin = get_origin(tp)
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a, defs) for a in get_args(tp)]}
    if origin is list:
        return {"type": "array", "items": json_schema(get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(get_args(tp)[1], defs)}
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    raise TypeError(f"no JSON schema for {tp!r}")


def protocol_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    envelopes = (messages.Hello, messages.Auth, messages.Welcome, messages.Refused,
                 messages.Request, messages.Response, messages.Event)  # fmt: skip
    return {
        "envelopes": [json_schema(t, defs) for t in envelopes],
        "methods": {
            name: {"params": json_schema(p, defs), "result": json_schema(r, defs)}
            for name, (p, r) in messages.METHODS.items()
        },
        "events": {name: json_schema(t, defs) for name, t in messages.EVENTS.items()},
        "$defs": defs,
    }


if __name__ == "__main__":
    print(json.dumps(protocol_schema(), indent=2))
