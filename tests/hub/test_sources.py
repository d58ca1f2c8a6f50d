"""Import sources against hostile input: zip traversal and bombs, paths outside sharing/, URLs."""

from __future__ import annotations

import stat
import struct
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from detkit.errors import BadInput, TooLarge, YmirError
from detkit.synth import write_sample_zip
from hub.datasets.sources import Limits, Source, open_source, open_tree

MODES = ["extract", "in-place"]


def opened(tmp_path: Path, source: Source, limits: Limits | None = None):
    return open_source(source, sharing_dir=tmp_path / "sharing", tmp_dir=tmp_path / "tmp",
                       limits=limits or Limits())


def consume(tmp_path: Path, source: Source, limits: Limits | None = None, mode: str = "extract") -> int:
    """Open a source both ways the engine can: extracted (open_source) or read in place (open_tree)."""
    kw = {"sharing_dir": tmp_path / "sharing", "tmp_dir": tmp_path / "tmp", "limits": limits or Limits()}
    if mode == "extract":
        with open_source(source, **kw) as root:
            return sum(1 for p in root.rglob("*") if p.is_file())
    with open_tree(source, **kw) as tree:
        return sum(len(tree.read(ref)) >= 0 for ref in tree.files.values())


def make_zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def test_zip_is_extracted_and_cleaned_up(tmp_path):
    z = write_sample_zip(tmp_path / "s.zip", images=3, seed=0)
    with opened(tmp_path, Source("zip", str(z))) as root:
        assert sorted(p.name for p in (root / "images").iterdir()) == [f"scene_00000{i}.jpg" for i in range(3)]
        assert (root / "gt" / "scene_000000.xml").is_file()
    assert not root.exists() and list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    "entry, message",
    [
        ("../evil.txt", "escapes"),
        ("images/../../evil.txt", "escapes"),
        ("/etc/evil.txt", "absolute"),
        ("C:/evil.txt", "absolute"),
        ("..\\evil.txt", "escapes"),
        (symlink_entry("images/link.jpg"), "symbolic link"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "drive", "backslash", "symlink"],
)
@pytest.mark.parametrize("mode", MODES)
def test_zip_entries_escaping_the_target_are_refused(tmp_path, entry, message, mode):
    z = make_zip(tmp_path / "evil.zip", [("images/a.jpg", b"x"), (entry, b"/etc/passwd")])
    with pytest.raises(BadInput, match=message):
        consume(tmp_path, Source("zip", str(z)), mode=mode)
    assert not (tmp_path / "evil.txt").exists() and not Path("/etc/evil.txt").exists()
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("mode", MODES)
def test_zip_bomb_total_size_limit(tmp_path, mode):
    z = make_zip(tmp_path / "big.zip", [("images/a.bin", bytes(600_000)), ("images/b.bin", bytes(600_000))],
                 zipfile.ZIP_DEFLATED)
    with pytest.raises(TooLarge, match="uncompressed size"):
        consume(tmp_path, Source("zip", str(z)), Limits(max_total_uncompressed=1_000_000), mode)


@pytest.mark.parametrize("mode", MODES)
def test_zip_bomb_ratio_limit(tmp_path, mode):
    z = make_zip(tmp_path / "bomb.zip", [("images/zeros.bin", bytes(5 << 20))], zipfile.ZIP_DEFLATED)
    with pytest.raises(TooLarge, match="zip bomb"):
        consume(tmp_path, Source("zip", str(z)), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_zip_lying_about_its_sizes_is_stopped_while_streaming(tmp_path, mode):
    """The central directory claims 1 KiB; the entry really inflates to 4 MiB."""
    z = make_zip(tmp_path / "liar.zip", [("images/zeros.bin", bytes(4 << 20))], zipfile.ZIP_DEFLATED)
    raw = bytearray(z.read_bytes())
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size in local + central header
        pos = raw.find(sig)
        raw[pos + off:pos + off + 4] = struct.pack("<I", 1024)
    z.write_bytes(bytes(raw))
    with pytest.raises(YmirError):
        consume(tmp_path, Source("zip", str(z)), mode=mode)
    assert not (tmp_path / "tmp").exists() or list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("mode", MODES)
def test_zip_file_count_limit(tmp_path, mode):
    z = make_zip(tmp_path / "many.zip", [(f"images/{i}.jpg", b"x") for i in range(20)])
    with pytest.raises(TooLarge, match="entries"):
        consume(tmp_path, Source("zip", str(z)), Limits(max_files=10), mode)


@pytest.mark.parametrize("mode", MODES)
def test_empty_zip_and_not_a_zip(tmp_path, mode):
    z = make_zip(tmp_path / "empty.zip", [])
    with pytest.raises(BadInput, match="empty"):
        consume(tmp_path, Source("zip", str(z)), mode=mode)
    dirs_only = make_zip(tmp_path / "dirs.zip", [("images/", b"")])
    with pytest.raises(BadInput, match="empty"):
        consume(tmp_path, Source("zip", str(dirs_only)), mode=mode)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(BadInput, match="not a readable zip"):
        consume(tmp_path, Source("zip", str(junk)), mode=mode)


def test_duplicate_entry_names_are_refused(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name while we build it
        z = make_zip(tmp_path / "dup.zip", [("images/a.jpg", b"1"), ("images/a.jpg", b"2")])
    for mode in MODES:
        with pytest.raises(BadInput, match="appears twice"):
            consume(tmp_path, Source("zip", str(z)), mode=mode)


def test_unknown_source_kind(tmp_path):
    with pytest.raises(BadInput, match="unknown source kind"):
        with opened(tmp_path, Source("ftp", "x")):
            pass


# --- path under sharing/ ---------------------------------------------------------------------------


@pytest.fixture
def sharing(tmp_path: Path) -> Path:
    ds = tmp_path / "sharing" / "ds" / "images"
    ds.mkdir(parents=True)
    (ds / "a.jpg").write_bytes(b"x")
    (tmp_path / "outside" / "images").mkdir(parents=True)
    return tmp_path / "sharing"


def test_path_inside_sharing_is_used_in_place(tmp_path, sharing):
    with opened(tmp_path, Source("path", "ds")) as root:
        assert root == (sharing / "ds").resolve()
    with opened(tmp_path, Source("path", str(sharing / "ds"))) as root:
        assert (root / "images" / "a.jpg").is_file()
    assert (sharing / "ds" / "images" / "a.jpg").is_file()  # never cleaned up


@pytest.mark.parametrize("mode", MODES)
def test_zip_under_sharing_is_read(tmp_path, sharing, mode):
    write_sample_zip(sharing / "s.zip", images=2, seed=0)
    assert consume(tmp_path, Source("path", "s.zip"), mode=mode) == 4


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("value", ["../outside", "ds/../../outside", "/etc"], ids=["dotdot", "nested", "absolute"])
def test_path_outside_sharing_is_refused(tmp_path, sharing, value, mode):
    with pytest.raises(BadInput, match="outside the sharing folder"):
        consume(tmp_path, Source("path", value), mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_path_through_a_symlink_out_of_sharing_is_refused(tmp_path, sharing, mode):
    (sharing / "sneaky").symlink_to(tmp_path / "outside")
    with pytest.raises(BadInput, match="outside the sharing folder"):
        consume(tmp_path, Source("path", "sneaky"), mode=mode)
    (sharing / "inner").symlink_to(sharing / "ds")  # a symlink that stays inside is fine
    with opened(tmp_path, Source("path", "inner")) as root:
        assert (root / "images" / "a.jpg").is_file()


def test_missing_path_is_refused(tmp_path, sharing):
    with pytest.raises(BadInput, match="does not exist"):
        with opened(tmp_path, Source("path", "nope")):
            pass


# --- url ----------------------------------------------------------------------------------------------


@pytest.fixture
def server(tmp_path: Path):
    payload = write_sample_zip(tmp_path / "served.zip", images=2, seed=0).read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            if self.path == "/slow.zip":
                time.sleep(1.5)
            if self.path == "/missing.zip":
                self.send_error(404)
                return
            body = {"/big.zip": bytes(3 << 20), "/text": b"hello"}.get(self.path, payload)
            self.send_response(200)
            if self.path != "/big.zip":
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("mode", MODES)
def test_url_is_downloaded_and_read(tmp_path, server, mode):
    assert consume(tmp_path, Source("url", f"{server}/data.zip"), mode=mode) == 4  # 2 images + 2 xml
    assert list((tmp_path / "tmp").iterdir()) == []


def test_url_size_cap_with_and_without_content_length(tmp_path, server):
    limits = Limits(url_max_bytes=1 << 20)
    with pytest.raises(TooLarge, match="limit"):
        with opened(tmp_path, Source("url", f"{server}/big.zip"), limits):  # no Content-Length: counted
            pass
    with pytest.raises(TooLarge, match="limit"):
        with opened(tmp_path, Source("url", f"{server}/data.zip"), Limits(url_max_bytes=100)):  # declared
            pass
    assert list((tmp_path / "tmp").iterdir()) == []


def test_url_timeout(tmp_path, server):
    started = time.monotonic()
    with pytest.raises(BadInput, match="no answer within 0.3s"):
        with opened(tmp_path, Source("url", f"{server}/slow.zip"), Limits(url_timeout=0.3)):
            pass
    assert time.monotonic() - started < 1.4


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.zip", "gopher://x", "/etc/passwd"])
def test_url_non_http_scheme_is_refused(tmp_path, url):
    with pytest.raises(BadInput, match="only http and https"):
        with opened(tmp_path, Source("url", url)):
            pass


def test_url_http_error_and_non_zip(tmp_path, server):
    with pytest.raises(BadInput, match="HTTP 404"):
        with opened(tmp_path, Source("url", f"{server}/missing.zip")):
            pass
    with pytest.raises(BadInput, match="not a zip"):
        with opened(tmp_path, Source("url", f"{server}/text")):
            pass


def test_zip_entry_clashing_file_and_folder_is_refused(tmp_path):
    z = make_zip(tmp_path / "clash.zip", [("images", b"x"), ("images/a.jpg", b"y")])
    with pytest.raises(BadInput, match="clashes"):
        consume(tmp_path, Source("zip", str(z)))


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_zip_read_in_place_checks_every_member(tmp_path, compression):
    """Members read in place are the exact bytes; a flipped byte, a short or a broken entry is named."""
    payload = bytes(range(256)) * 40
    z = make_zip(tmp_path / "ok.zip", [("images/a.bin", payload), ("images/b.bin", b"x" * 10)], compression)
    with open_tree(Source("zip", str(z)), sharing_dir=tmp_path, tmp_dir=tmp_path / "tmp", limits=Limits()) as tree:
        assert [tree.read(ref) for ref in tree.files.values()] == [payload, b"x" * 10]

    def damaged(name: str, edit) -> Path:
        raw = bytearray(z.read_bytes())
        edit(raw, raw.find(b"images/a.bin") + len("images/a.bin"))  # just past the local header's name
        out = tmp_path / name
        out.write_bytes(bytes(raw))
        return out

    def flip(raw, pos):
        raw[pos + 100] ^= 0xFF

    def bad_signature(raw, pos):
        raw[0:4] = b"PK\x00\x00"

    for name, edit, reason in (("flip.zip", flip, r"CRC mismatch|deflate|\d+ bytes where"),
                               ("header.zip", bad_signature, "bad local file header")):
        with open_tree(Source("zip", str(damaged(name, edit))), sharing_dir=tmp_path, tmp_dir=tmp_path / "tmp",
                       limits=Limits()) as tree:
            with pytest.raises(BadInput, match=rf"entry 'images/a.bin' is corrupt \(({reason})"):
                tree.read(tree.files["images/a.bin"])
            assert tree.read(tree.files["images/b.bin"]) == b"x" * 10


@pytest.fixture
def redirector(server):
    """A server answering with redirects: to another scheme, to ``server``, in a loop."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            target = {"/to-file": "file:///etc/passwd", "/to-ftp": "ftp://127.0.0.1/x.zip",
                      "/ok": f"{server}/data.zip", "/loop": "/loop"}.get(self.path, "/")
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_url_redirects_are_checked_like_the_url(tmp_path, redirector):
    assert consume(tmp_path, Source("url", f"{redirector}/ok")) == 4  # http -> http is followed
    for path, scheme in (("/to-file", "file"), ("/to-ftp", "ftp")):
        with pytest.raises(BadInput, match=f"redirects to .*only http and https are allowed, not '{scheme}'"):
            with opened(tmp_path, Source("url", f"{redirector}{path}")):
                pass
    with pytest.raises(BadInput, match="more than 5 redirects"):
        with opened(tmp_path, Source("url", f"{redirector}/loop")):
            pass
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "192.168.0.1", "169.254.169.254", "[::1]"])
def test_url_private_ranges_can_be_blocked(tmp_path, host):
    with pytest.raises(BadInput, match="private or reserved address"):
        with opened(tmp_path, Source("url", f"http://{host}:9/x.zip"), Limits(url_block_private=True)):
            pass


def test_url_block_private_also_blocks_redirects_into_them(tmp_path, redirector, monkeypatch):
    # the redirector itself is on loopback: pretend its first hop is public to reach the redirect check
    from hub.datasets import url_download

    real = url_download._check_url
    calls = []

    def first_hop_public(url, limits, where):
        calls.append(url)
        if len(calls) == 1:
            return None
        return real(url, limits, where)

    monkeypatch.setattr(url_download, "_check_url", first_hop_public)
    with pytest.raises(BadInput, match="redirects to .*private or reserved address"):
        with opened(tmp_path, Source("url", f"{redirector}/ok"), Limits(url_block_private=True)):
            pass
