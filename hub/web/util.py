"""Helpers for pages: the hub state, flash-and-redirect on user errors, form parsing."""

from __future__ import annotations

from functools import wraps

from flask import current_app, flash, redirect, request

from detkit.errors import YmirError


def state():
    return current_app.extensions["ymir"]


def database():
    return state().database


def form_action(fallback):
    """Decorator for POST handlers: a user error flashes its message and goes back to the form.

    ``fallback(**view_args)`` gives the URL to return to.
    """

    def deco(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except YmirError as exc:
                if exc.status >= 500:
                    raise
                flash(exc.message, "error")
                return redirect(request.referrer or fallback(**kwargs))

        return wrapper

    return deco


def split_names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]
