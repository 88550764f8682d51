"""Validate decoded JSON against a TypedDict (the subset ``messages.py`` uses), stdlib only.

Strict on purpose: unknown keys, missing keys, a bool where an int is expected are refused, so a
confused or hostile client gets a clear ``bad_params`` instead of reaching the handlers.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

MAX_DEPTH = 8


class SchemaError(ValueError):
    pass


@functools.cache
def _hints(td: type[Any]) -> dict[str, Any]:
    return get_type_hints(td)


def _is_typeddict(tp: object) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def check(value: object, tp: Any, where: str = "params", depth: int = 0) -> None:
    """Raise ``SchemaError`` naming the first place where ``value`` does not fit ``tp``."""
    if depth > MAX_DEPTH:
        raise SchemaError(f"{where}: nested too deeply")
    if tp is Any:
        return
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object")
        hints = _hints(tp)
        for key in value:
            if key not in hints:
                raise SchemaError(f"{where}: unknown field {key!r}")
        for key in tp.__required_keys__:
            if key not in value:
                raise SchemaError(f"{where}: missing field {key!r}")
        for key, v in value.items():
            check(v, hints[key], f"{where}.{key}", depth + 1)
        return
    origin = get_origin(tp)
    if origin is Literal:
        if value not in get_args(tp) or isinstance(value, bool):
            raise SchemaError(f"{where}: expected one of {get_args(tp)}")
        return
    if origin in (Union, types.UnionType):
        errors = []
        for alt in get_args(tp):
            try:
                check(value, alt, where, depth + 1)
                return
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(errors[0] if errors else f"{where}: no alternative fits")
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list")
        (item,) = get_args(tp)
        for i, v in enumerate(value):
            check(v, item, f"{where}[{i}]", depth + 1)
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object")
        _k, item = get_args(tp)
        for k, v in value.items():
            check(v, item, f"{where}.{k}", depth + 1)
        return
    _check_scalar(value, tp, where)


def _check_scalar(value: object, tp: Any, where: str) -> None:
    if tp is type(None) or tp is None:
        ok = value is None
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    else:
        raise SchemaError(f"{where}: unsupported schema type {tp!r}")
    if not ok:
        name = "null" if tp in (None, type(None)) else tp.__name__
        raise SchemaError(f"{where}: expected {name}")
