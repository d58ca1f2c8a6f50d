"""A bounded coverage-guided fuzz run (atheris / libFuzzer) of one parser of outside input.

    .venv/bin/python scripts/fuzz.py voc -runs=20000      # or -max_total_time=60
    targets: voc coco yolo ls_export mqtt oip image zip

A target calls the parser on the fuzzer's bytes and accepts a result or a YmirError; any other exception
is a crash (libFuzzer prints it, saves the input as crash-*, exits non-zero). tests/test_fuzz.py runs each
target for a few thousand inputs.
"""

from __future__ import annotations

import io
import sys
import tempfile
import zipfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from agent import oip, protocol
    from detkit.errors import YmirError
    from detkit.imaging import decode_image
    from detkit.io.coco import read_coco
    from detkit.io.voc import parse_voc
    from detkit.io.yolo import parse_yolo
    from hub.datasets.sources import Limits, extract_zip
    from hub.labeling.ls_format import parse_export

_WORK = Path(tempfile.mkdtemp(prefix="ymir-fuzz-"))


def _zip(data: bytes) -> None:
    path = _WORK / "in.zip"
    out = _WORK / "out"
    if out.exists():
        for p in sorted(out.rglob("*"), reverse=True):
            p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
    out.mkdir(exist_ok=True)
    path.write_bytes(data)
    extract_zip(path, out, Limits(max_total_uncompressed=1 << 20, max_files=100))


TARGETS = {
    "voc": lambda b: parse_voc(b, "gt/x.xml"),
    "coco": lambda b: read_coco(b, "coco.json"),
    "yolo": lambda b: parse_yolo(b, ["a", "b"], "labels/x.txt"),
    "ls_export": parse_export,
    "mqtt": lambda b: (protocol.decode(b, "status"), protocol.parse_prediction_batch(b)),
    "oip": lambda b: oip.parse_infer_request(b, None),
    "image": lambda b: decode_image(b, 4_000_000, 64, "images/x.jpg"),
    "zip": _zip,
}


def _seed_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("images/a.jpg", b"\xff\xd8" + bytes(100))
        zf.writestr("gt/a.xml", b"<annotation><filename>a.jpg</filename></annotation>")
    return buf.getvalue()


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz.py {{{'|'.join(TARGETS)}}} [libFuzzer flags]")
    target = TARGETS[sys.argv[1]]
    corpus = _WORK / "corpus"
    corpus.mkdir()
    (corpus / "seed").write_bytes(_seed_zip() if sys.argv[1] == "zip" else b'{"inputs": [], "images": []}')

    def one(data: bytes) -> None:
        try:
            target(data)
        except YmirError:
            pass

    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
