"""Error rendering: one JSON shape for the API, an error page for the web.

API responses are always ``{"error": message, "code": code}`` with the real HTTP status, for
:class:`~detkit.errors.YmirError`, werkzeug HTTP errors (unknown route, wrong method, too large)
and unexpected exceptions alike.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from detkit.errors import YmirError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_input",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "bad_input",
    429: "too_many_requests",
}


def _render(message: str, code: str, status: int):
    if request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json":
        return jsonify({"error": message, "code": code}), status
    return render_template("error.html", message=message, code=code, status=status), status


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on ``app``."""

    @app.errorhandler(YmirError)
    def _ymir(exc: YmirError):
        if exc.status >= 500:
            log.error("%s: %s", exc.code, exc.message)
        response = _render(exc.message, exc.code, exc.status)
        if getattr(exc, "retry_after", None):
            response[0].headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 404:
            message = f"not found: {request.path}"
        elif status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        return _render(message, _HTTP_CODES.get(status, "error"), status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _render("internal error (see the hub log)", "internal", 500)
