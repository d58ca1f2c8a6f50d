"""The login rate limit: failed logins counted per client address and per username in a sliding window.

After ``max_failures`` failures within ``window_s`` seconds for either key, logins from that address or
for that user name are refused with :class:`~detkit.errors.TooManyRequests` (HTTP 429, ``Retry-After``)
before the password is even checked, until the oldest failure leaves the window. A successful login clears
its user name's and address's count. Counts live in the hub's SQLite (``login_failures``), so every worker
process of one hub and a restart see the same ones.
"""

from __future__ import annotations

import math
import time

from detkit.errors import TooManyRequests
from hub.db import Database
from hub.store import users as user_store


def _keys(address: str | None, username: str) -> list[str]:
    return [f"addr:{address or '?'}", f"user:{(username or '').strip().lower()}"]


def check(database: Database, settings, address: str | None, username: str, now: float | None = None) -> None:
    """Raise TooManyRequests when the address or the user name has used up its failures."""
    now = time.time() if now is None else now
    since = now - settings.login_window_s
    keys = _keys(address, username)
    counts = user_store.count_login_failures(database, keys, since)
    full = [k for k in keys if counts.get(k, 0) >= settings.login_max_failures]
    if not full:
        return
    oldest = min(user_store.oldest_login_failure(database, k, since) or now for k in full)
    wait = max(1, math.ceil(oldest + settings.login_window_s - now))
    what = "this address" if full[0].startswith("addr:") else "this user name"
    raise TooManyRequests(f"too many failed logins from {what}: try again in {wait} s", retry_after=wait)


def failed(database: Database, settings, address: str | None, username: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    user_store.add_login_failure(database, _keys(address, username), now, now - settings.login_window_s)


def succeeded(database: Database, address: str | None, username: str) -> None:
    user_store.clear_login_failures(database, _keys(address, username))
