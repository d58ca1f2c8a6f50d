"""URL imports: the download, under the import's limits (http/https only, redirects checked hop by hop,
a byte cap, an inactivity timeout, an overall deadline, optionally no private address ranges)."""

from __future__ import annotations

import ipaddress
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from detkit.errors import BadInput, TooLarge

if TYPE_CHECKING:
    from hub.datasets.sources import Limits

CHUNK = 1 << 20


MAX_REDIRECTS = 5


def _check_url(url: str, limits: Limits, where: str) -> None:
    """http/https only; with ``url_block_private`` no host that resolves to a non-public address."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadInput(f"{where}: only http and https are allowed, not {scheme or 'no scheme'!r}")
    if not limits.url_block_private:
        return
    host = parts.hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 80, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError):
        raise BadInput(f"{where}: host {host!r} does not resolve") from None
    for addr in addresses:
        ip = ipaddress.ip_address(addr.split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise BadInput(f"{where}: host {host!r} is a private or reserved address ({ip}); "
                           "URL imports from private ranges are blocked (YMIR_URL_BLOCK_PRIVATE)")


def download(url: str, dest: Path, limits: Limits) -> int:
    """Stream ``url`` (http/https only) into the file ``dest`` under the limits; returns its size.

    Redirects are followed by hand (at most :data:`MAX_REDIRECTS`), each target checked like the URL itself,
    so a redirect can reach neither another scheme nor, with ``url_block_private``, a private address.
    """
    _check_url(url, limits, f"url {url[:200]!r}")
    import requests  # the hub's dependency; imported here so detkit-only users never need it

    started = time.monotonic()
    size = 0
    try:
        for _ in range(MAX_REDIRECTS + 1):
            resp = requests.get(url, stream=True, allow_redirects=False,
                                timeout=(limits.url_timeout, limits.url_timeout))
            if not resp.is_redirect:
                break
            target = urljoin(url, resp.headers.get("Location", ""))
            resp.close()
            _check_url(target, limits, f"url {url[:200]!r} redirects to {target[:200]!r}")
            url = target
        else:
            raise BadInput(f"url {url[:200]!r}: more than {MAX_REDIRECTS} redirects")
        with resp:
            if resp.status_code != 200:
                raise BadInput(f"url {url[:200]!r}: HTTP {resp.status_code}")
            declared = resp.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limits.url_max_bytes:
                raise TooLarge(f"url {url[:200]!r}: {declared} bytes exceeds the limit of {limits.url_max_bytes}")
            with open(dest, "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    size += len(chunk)
                    if size > limits.url_max_bytes:
                        raise TooLarge(f"url {url[:200]!r}: more than the limit of {limits.url_max_bytes} bytes")
                    if time.monotonic() - started > limits.url_deadline:
                        raise BadInput(f"url {url[:200]!r}: download took longer than {limits.url_deadline:.0f}s")
                    out.write(chunk)
    except requests.Timeout:
        raise BadInput(f"url {url[:200]!r}: no answer within {limits.url_timeout:g}s") from None
    except requests.RequestException as exc:
        raise BadInput(f"url {url[:200]!r}: download failed ({type(exc).__name__}: {exc})") from None
    return size
