"""Small helpers shared by the API modules: the hub state, request bodies, typed fields."""

from __future__ import annotations

from flask import current_app, request

from detkit.errors import BadInput


def state():
    """The running hub's :class:`hub.HubState`."""
    return current_app.extensions["ymir"]


def database():
    return state().database


def body() -> dict:
    """The request's JSON object (an empty dict for an empty body); BadInput otherwise."""
    if not request.data:
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise BadInput("request body: expected a JSON object")
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
