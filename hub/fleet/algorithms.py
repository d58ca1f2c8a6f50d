"""Algorithms: model packages published for deployment, their review, and "try it out".

* :func:`publish_model` turns a model stage's ONNX into a model package (``converters`` target
  ``onnx-fp32``: the manifest records the spec, backend and source sha256), zips it and stores the
  zip as an artifact (``artifacts/<sha256>.zip`` in the workspace, served to devices by sha256);
* :func:`publish_package` takes a package zip made elsewhere (``ymir-convert package``), verified
  file by file with :func:`detkit.package.verify`;
* review: ``private`` -> (owner asks) ``pending`` -> (admin) ``public`` | ``rejected`` with a note;
* :func:`try_image` runs the package with :mod:`detkit.runtime` on one image and draws the boxes.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import re
import shutil
import socket
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlsplit

from detkit.errors import BadInput, BadModel, Forbidden, NotFound, TooLarge, Unavailable
from detkit.package import pack, verify
from hub.db import Database
from hub.store import fleet_algorithms as algo_store
from hub.store import models as models_store

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TRY_MAX_BYTES = 20 * 1024 * 1024
TRY_TIMEOUT_S = 10.0
_detectors: OrderedDict[str, object] = OrderedDict()
_det_lock = threading.Lock()


def artifacts_dir(settings) -> Path:
    return settings.home / "artifacts"


def artifact_path(settings, sha256: str) -> Path:
    return artifacts_dir(settings) / f"{sha256}.zip"


def signing_key(settings):
    """The hub's Ed25519 package-signing key (``keys/artifact-signing.pem`` in the workspace, made once)."""
    from detkit.signing import load_or_create_key

    return load_or_create_key(Path(settings.home) / "keys" / "artifact-signing.pem")


def public_key(settings) -> str:
    """The hub's public key as devices take it (``ed25519:<base64>``; the agent's ``hub_public_key``)."""
    from detkit.signing import public_key_text

    return public_key_text(signing_key(settings))


def store_artifact(database: Database, settings, zip_path: Path) -> tuple[str, int]:
    """Sign a package zip's manifest and keep the signed zip under artifacts/ by sha256 (devices download it
    from there and check the signature with the hub's public key)."""
    from detkit.signing import sign_zip, verify_zip

    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmpdir:
        signed = Path(tmpdir) / "package.zip"
        shutil.copyfile(zip_path, signed)
        try:  # already signed by this hub (e.g. a stored artifact published again): keep its bytes, and its sha256
            verify_zip(signed, public_key(settings))
        except BadModel:
            sign_zip(signed, signing_key(settings))
        h = hashlib.sha256()
        with open(signed, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        sha = h.hexdigest()
        dst = artifact_path(settings, sha)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.copyfile(signed, tmp)
            tmp.replace(dst)
    size = dst.stat().st_size
    algo_store.add_artifact(database, sha, dst.name, size)
    return sha, size


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput(f"algorithm name {name!r}: 1-64 of letters, digits, '_', '.', '-' (starting alphanumeric)")
    return name


def _register(database: Database, settings, zip_path: Path, *, name: str, title: str, description: str,
              project_id: int | None, model_id: int | None, stage: str, owner_id: int | None) -> dict:
    manifest = verify(zip_path)
    sha, size = store_artifact(database, settings, zip_path)
    return algo_store.create_algorithm(
        database, name=name, title=title, description=description, project_id=project_id, model_id=model_id,
        stage=stage, sha256=sha, size=size, backend=manifest.backend or "onnxruntime",
        precision=manifest.precision or "fp32", class_names=manifest.class_names, manifest=manifest.to_dict(),
        owner_id=owner_id)


def publish_model(database: Database, settings, model_id: int, *, stage: str | None = None, name: str | None = None,
                  title: str = "", description: str = "", owner_id: int | None = None) -> dict:
    """Package a model stage's ONNX (``onnx-fp32``) and add it to the owner's algorithms."""
    from converters.package import convert

    model = models_store.get_model(database, model_id)
    stage = stage or model["best_stage"]
    st = next((s for s in model["stages"] if s["name"] == stage), None)
    if st is None:
        raise BadInput(f"model {model_id} has no stage {stage!r}; stages: {[s['name'] for s in model['stages']]}")
    folder = settings.models_dir / model["folder"]
    onnx = [folder / Path(f).name for f in st["files"] if str(f).endswith(".onnx")]
    if not onnx or not onnx[0].is_file():
        raise BadModel(f"model {model_id} stage {stage!r} has no .onnx file to publish")
    name = _check_name(name or re.sub(r"[^A-Za-z0-9_.-]", "-", model["name"]).strip("-._") or f"model{model_id}")
    with tempfile.TemporaryDirectory(prefix="ymir-publish-", dir=settings.tmp_dir) as tmp:
        convert("onnx-fp32", onnx[0], Path(tmp) / "pkg", name=name, version=f"{model['version']}-{stage}")
        zip_path = pack(Path(tmp) / "pkg", Path(tmp) / "package.zip")
        return _register(database, settings, zip_path, name=name, title=title or f"{model['name']} v{model['version']}",
                         description=description, project_id=model["project_id"], model_id=model_id, stage=stage,
                         owner_id=owner_id)


def publish_package(database: Database, settings, zip_path: Path, *, name: str | None = None, title: str = "",
                    description: str = "", project_id: int | None = None, owner_id: int | None = None) -> dict:
    """Add a package zip (verified) to the owner's algorithms."""
    manifest = verify(zip_path)
    name = _check_name(name or manifest.name)
    return _register(database, settings, Path(zip_path), name=name, title=title, description=description,
                     project_id=project_id, model_id=None, stage="", owner_id=owner_id)


def publish_upload(database: Database, settings, upload, *, name: str | None, title: str, description: str,
                   project_id: int | None, owner_id: int | None) -> dict:
    """:func:`publish_package` for an uploaded file (anything with ``save(path)``, e.g. a werkzeug upload)."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        path = Path(tmp) / "package.zip"
        upload.save(path)
        return publish_package(database, settings, path, name=name, title=title, description=description,
                               project_id=project_id, owner_id=owner_id)


def visible_to(algo: dict, user: dict | None) -> bool:
    return algo["visibility"] == "public" or user is None or user["role"] == "admin" or algo["owner_id"] == user["id"]


def get_visible(database: Database, algorithm_id: int, user: dict | None) -> dict:
    """The algorithm if ``user`` may see it (public, theirs, or an admin), else NotFound."""
    algo = algo_store.get_algorithm(database, algorithm_id)
    if not visible_to(algo, user):
        raise NotFound(f"algorithm {algorithm_id} not found")
    return algo


def request_public(database: Database, algorithm_id: int, user: dict) -> dict:
    algo = algo_store.get_algorithm(database, algorithm_id)
    if user["role"] != "admin" and algo["owner_id"] != user["id"]:
        raise Forbidden("only the owner may publish an algorithm to public")
    return algo_store.set_visibility(database, algorithm_id, "pending", expect=("private", "rejected"))


def review(database: Database, algorithm_id: int, approve: bool, note: str, reviewer: dict) -> dict:
    if reviewer["role"] != "admin":
        raise Forbidden("administrators only")
    return algo_store.set_visibility(database, algorithm_id, "public" if approve else "rejected", note=note,
                                     reviewer=reviewer["id"], expect=("pending",))


# --- try it out ------------------------------------------------------------------------------------


def _detector(settings, sha256: str):
    from detkit.runtime import load

    with _det_lock:
        det = _detectors.get(sha256)
        if det is None:
            path = artifact_path(settings, sha256)
            if not path.is_file():
                raise Unavailable(f"artifact {sha256[:12]} is missing from the workspace")
            det = load(path)
            _detectors[sha256] = det
            while len(_detectors) > 2:  # a couple of models stay warm; older ones are released
                _detectors.popitem(last=False)[1].close()
        _detectors.move_to_end(sha256)
        return det


def _public_host(host: str) -> None:
    """Refuse URLs that resolve to loopback, private or link-local addresses (the hub fetches them)."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise BadInput(f"image URL: cannot resolve host {host!r}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            raise BadInput(f"image URL: host {host!r} is a local or private address; refused")


def fetch_image(url: str, *, max_bytes: int = TRY_MAX_BYTES, timeout: float = TRY_TIMEOUT_S,
                allow_private: bool = False) -> bytes:
    """Download an image for "try it out": http/https only, at most ``max_bytes``, ``timeout`` seconds."""
    import requests

    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"image URL {url!r}: only http:// and https:// URLs")
    if not allow_private:
        _public_host(parts.hostname)
    try:
        with requests.get(url, stream=True, timeout=timeout, allow_redirects=False) as resp:
            if resp.status_code != 200:
                raise BadInput(f"image URL answered {resp.status_code}")
            if int(resp.headers.get("Content-Length") or 0) > max_bytes:
                raise TooLarge(f"image URL: over the {max_bytes} byte limit")
            buf = bytearray()
            for chunk in resp.iter_content(1 << 16):
                buf += chunk
                if len(buf) > max_bytes:
                    raise TooLarge(f"image URL: over the {max_bytes} byte limit")
            return bytes(buf)
    except requests.RequestException as exc:
        raise BadInput(f"image URL could not be fetched: {exc}") from None


def try_image(settings, algo: dict, image: bytes, conf: float = 0.25) -> dict:
    """Run ``algo`` on ``image``: ``{"detections": [...], "width", "height", "png": bytes with boxes}``."""
    from PIL import Image, ImageDraw

    from detkit.imaging import probe_image

    if not image:
        raise BadInput("no image given")
    if len(image) > TRY_MAX_BYTES:
        raise TooLarge(f"image: over the {TRY_MAX_BYTES} byte limit")
    probe_image(image, 50_000_000, where="image")  # not an image, a bomb, truncated: BadInput
    det = _detector(settings, algo["sha256"])
    result = det.detect(image, conf=conf)[0].to_json()
    img = Image.open(io.BytesIO(image)).convert("RGB")
    draw = ImageDraw.Draw(img)
    for d in result["detections"]:
        x1, y1, x2, y2 = d["box"]
        draw.rectangle([x1, y1, x2, y2], outline=(255, 64, 32), width=max(1, round(max(img.size) / 300)))
        draw.text((x1 + 2, max(0, y1 - 11)), f"{d['class_name']} {d['score']:.2f}", fill=(255, 64, 32))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return {**result, "png": buf.getvalue()}
