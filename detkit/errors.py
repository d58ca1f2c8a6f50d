"""One error vocabulary for the whole project.

Every error a user can cause is a :class:`YmirError` subclass with a stable ``code`` (what API
clients and tests match on) and an HTTP ``status``. The hub renders them as
``{"error": message, "code": code}``; the CLIs exit 2 with the message; the agent's Open
Inference Protocol routes render ``{"error": message}``. Define new kinds here, once.
"""

from __future__ import annotations


class YmirError(Exception):
    """Base of every user-facing error: a message saying what and where, a code, a status."""

    code = "error"
    status = 500

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_json(self) -> dict:
        return {"error": self.message, "code": self.code}


class BadInput(YmirError):
    """The request or file is malformed (bad zip, hostile XML, broken image, bad field)."""

    code = "bad_input"
    status = 400


class NotFound(YmirError):
    code = "not_found"
    status = 404


class Conflict(YmirError):
    """The request is valid but clashes with stored state (duplicate name, wrong job state)."""

    code = "conflict"
    status = 409


class Unauthorized(YmirError):
    code = "unauthorized"
    status = 401


class Forbidden(YmirError):
    code = "forbidden"
    status = 403


class TooManyRequests(YmirError):
    """Too many attempts in a window (the login rate limit); ``retry_after`` says when to come back (s)."""

    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, *, retry_after: int = 60):
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))


class TooLarge(YmirError):
    """An upload, download or archive exceeds a configured size or ratio limit."""

    code = "too_large"
    status = 413


class StorageFull(YmirError):
    """The disk (or quota) holding the workspace is full: the operation was rolled back."""

    code = "storage_full"
    status = 507


class Unavailable(YmirError):
    """A backend or SDK is missing, or a model is not loaded/enabled."""

    code = "unavailable"
    status = 503


class UnknownClasses(BadInput):
    code = "unknown_classes"

    def __init__(self, names: list[str], where: str = ""):
        self.names = sorted(set(names))
        suffix = f" in {where}" if where else ""
        super().__init__(f"unknown classes{suffix}: {', '.join(self.names)}")


class BadModel(BadInput):
    """A model file or package that cannot be used: not ONNX, wrong I/O, sha256 mismatch."""

    code = "bad_model"


class JobFailed(YmirError):
    code = "job_failed"
    status = 500
