"""Small helpers shared by the API modules: the hub state, request bodies, typed fields."""

from __future__ import annotations

import math

from flask import current_app, request
from werkzeug.routing import IntegerConverter

from detkit.errors import BadInput

#: the largest integer SQLite stores; a bigger id or count would raise OverflowError deep in a query
SQLITE_INT_MAX = 2**63 - 1


class IdConverter(IntegerConverter):
    """``<int:...>`` in URLs, capped at what SQLite can hold: a bigger number matches no route (404)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's argument name
        kwargs.setdefault("max", SQLITE_INT_MAX)
        super().__init__(map, *args, **kwargs)


def check_int(value: int, where: str) -> int:
    """``value`` if SQLite can store it; BadInput naming ``where`` otherwise."""
    if not -SQLITE_INT_MAX - 1 <= value <= SQLITE_INT_MAX:
        raise BadInput(f"{where}: {value} is out of range (at most {SQLITE_INT_MAX})")
    return value


def state():
    """The running hub's :class:`hub.HubState`."""
    return current_app.extensions["ymir"]


def database():
    return state().database


def _check_text(value, path: str = "") -> None:
    """BadInput for a string that is no Unicode text: JSON may escape a lone surrogate (``"\\ud800"``), which
    SQLite and every encoder refuse later with UnicodeEncodeError."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            where = f"field '{path}'" if path else "request body"
            raise BadInput(f"{where}: not valid Unicode text (a lone surrogate escape)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, path)
            _check_text(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_text(item, f"{path}[{i}]")


def body() -> dict:
    """The request's JSON object (an empty dict for an empty body); BadInput otherwise."""
    if not request.data:
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("request body: expected a JSON object")
    _check_text(data)
    return data


def get_field(data: dict, name: str, kind: type | tuple, *, required: bool = False, default=None):
    """``data[name]`` checked against ``kind``; BadInput names the field."""
    if name not in data or data[name] is None:
        if required:
            raise BadInput(f"field '{name}' is required")
        return default
    value = data[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and kind in (int, float):
        raise BadInput(f"field '{name}': expected {kind.__name__}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadInput(f"field '{name}': expected {names}, got {type(value).__name__}")
    if isinstance(value, int):
        check_int(value, f"field '{name}'")
    if isinstance(value, float) and not math.isfinite(value):  # Python's JSON reads NaN and Infinity
        raise BadInput(f"field '{name}': expected a finite number, got {value}")
    return value


def str_list(data: dict, name: str) -> list[str] | None:
    """A list of strings, or a comma-separated string, or None when absent."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise BadInput(f"field '{name}': expected a list of strings")


def int_list(data: dict, name: str, *, required: bool = True) -> list[int]:
    """An id or a list of ids (non-empty when required; ``[]`` when absent and not required)."""
    value = data.get(name)
    if value is None and not required:
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
            or (required and not value):
        raise BadInput(f"field '{name}': expected an id or a {'non-empty ' if required else ''}list of ids")
    return [check_int(v, f"field '{name}'") for v in value]


def query_int(name: str, default: int, *, minimum: int = 0, maximum: int = 10**9) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"query parameter '{name}': expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise BadInput(f"query parameter '{name}': must be between {minimum} and {maximum}")
    return value
