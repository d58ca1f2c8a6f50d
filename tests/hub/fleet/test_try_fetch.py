""""Try it out" image URLs: http/https only, no redirects, a size cap, a timeout, private ranges refused."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from detkit.errors import BadInput, TooLarge
from hub.fleet.algorithms import fetch_image


@pytest.fixture
def server():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path == "/slow":
                time.sleep(1.5)
            body = bytes(5000) if self.path == "/big" else b"\xff\xd8tiny"
            self.send_response(200)
            if self.path != "/big-undeclared":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(bytes(5000) if self.path == "/big-undeclared" else body)
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_private_hosts_are_refused_by_default(server):
    for url in (f"{server}/ok", "http://localhost:9/x", "http://10.0.0.1/x", "http://169.254.169.254/latest"):
        with pytest.raises(BadInput, match="local or private address"):
            fetch_image(url)
    assert fetch_image(f"{server}/ok", allow_private=True) == b"\xff\xd8tiny"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.jpg", "gopher://x", "x.jpg"])
def test_only_http_and_https(url):
    with pytest.raises(BadInput, match="only http:// and https://"):
        fetch_image(url)


def test_no_redirects_size_cap_and_timeout(server):
    with pytest.raises(BadInput, match="answered 302"):
        fetch_image(f"{server}/redirect", allow_private=True)
    with pytest.raises(TooLarge, match="byte limit"):
        fetch_image(f"{server}/big", allow_private=True, max_bytes=1000)
    with pytest.raises(TooLarge, match="byte limit"):
        fetch_image(f"{server}/big-undeclared", allow_private=True, max_bytes=1000)
    started = time.monotonic()
    with pytest.raises(BadInput, match="could not be fetched"):
        fetch_image(f"{server}/slow", allow_private=True, timeout=0.3)
    assert time.monotonic() - started < 1.4
