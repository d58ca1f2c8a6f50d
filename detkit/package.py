"""The model package: a folder or zip of model file(s) plus ``manifest.json`` (schema version 1 or 2).

A package is what the hub publishes and the device agent downloads, verifies and serves. Every file
is addressed by sha256 in ``manifest["files"]``; :func:`verify` re-hashes them and names the first
file that does not match. The manifest carries the :class:`detkit.manifest.ModelSpec` under
``"spec"``, so a runtime needs nothing else to pre- and post-process (see ``docs/model-package.md``).

Archives are read defensively: :func:`unpack` refuses absolute paths, ``..`` components, links,
duplicate names and archives larger than a limit, and verifies the result.

Schema 2 is schema 1 plus a spec of schema 2 (a model that takes uint8 NHWC and normalises in its
graph, see :mod:`detkit.manifest`). :func:`write_package` writes schema 2 only for such a spec, so
every other package stays readable by agents that know schema 1 only, and those refuse a schema-2
package with ``unsupported package schema 2`` before serving anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from detkit.errors import BadModel, TooLarge
from detkit.manifest import ModelSpec

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PACKAGE_SCHEMA = 1  # the schema of a package whose spec is schema 1
PACKAGE_SCHEMAS = (1, 2)  # what this build reads
TASKS = ("detection",)
STATUSES = ("accepted", "rejected", "unvalidated")
MAX_UNPACKED_BYTES = 4 << 30  # 4 GiB: far above any edge detector, far below a zip bomb
_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class PackageManifest:
    """``manifest.json`` of a model package (see ``docs/model-package.md`` for every field)."""

    name: str
    version: str
    spec: ModelSpec
    model: str  # relative path of the file a runtime opens (model.onnx, model.xml, model.engine)
    backend: str = "onnxruntime"
    precision: str = "fp32"
    task: str = "detection"
    source_sha256: str = ""
    accuracy: dict = field(default_factory=dict)
    speed: dict = field(default_factory=dict)
    status: str = "unvalidated"
    reason: str = ""
    created: str = ""
    files: dict[str, str] = field(default_factory=dict)
    schema: int = PACKAGE_SCHEMA

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["spec"] = self.spec.to_dict()
        data["class_names"] = self.class_names
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = MANIFEST) -> PackageManifest:
        """Validate and build; raises :class:`BadModel` naming the field and ``where``."""
        if not isinstance(data, dict):
            raise BadModel(f"{where}: expected a JSON object")
        if data.get("schema") not in PACKAGE_SCHEMAS:
            raise BadModel(f"{where}: unsupported package schema {data.get('schema')!r} "
                           f"(this build reads {', '.join(map(str, PACKAGE_SCHEMAS))})")
        for key in ("name", "version", "model"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise BadModel(f"{where}: {key!r} must be a non-empty string")
        if data.get("task", "detection") not in TASKS:
            raise BadModel(f"{where}: unknown task {data.get('task')!r}; known: {', '.join(TASKS)}")
        if data.get("status", "unvalidated") not in STATUSES:
            raise BadModel(f"{where}: unknown status {data.get('status')!r}; known: {', '.join(STATUSES)}")
        files = data.get("files")
        if not isinstance(files, dict) or not files:
            raise BadModel(f"{where}: 'files' must map each relative path to its sha256")
        for rel, digest in files.items():
            _check_relpath(rel, where)
            if not isinstance(digest, str) or len(digest) != 64:
                raise BadModel(f"{where}: files[{rel!r}] is not a sha256 hex digest")
        if data["model"] not in files:
            raise BadModel(f"{where}: model file {data['model']!r} is not listed in 'files'")
        spec = ModelSpec.from_dict(data.get("spec"), f"{where}: spec")
        if spec.schema > data["schema"]:
            raise BadModel(f"{where}: a spec of schema {spec.schema} needs package schema {spec.schema}, "
                           f"the manifest says {data['schema']}")
        known = set(cls.__dataclass_fields__) - {"spec"}
        return cls(spec=spec, **{k: v for k, v in data.items() if k in known})


def _check_relpath(rel: str, where: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or rel.startswith("~") or ":" in p.parts[0]:
        raise BadModel(f"{where}: unsafe path {rel!r} (must be relative, without '..')")
    return p


def write_package(
    folder: str | Path,
    *,
    name: str,
    version: str,
    spec: ModelSpec,
    model: str,
    files: list[str] | None = None,
    **fields,
) -> PackageManifest:
    """Hash the model files already in ``folder`` and write its ``manifest.json``.

    ``model`` is the relative path a runtime opens; ``files`` lists every other relative path to
    include (an OpenVINO IR's ``.bin``, for example). ``fields`` are the other manifest fields
    (backend, precision, accuracy, speed, status, reason, source_sha256).
    """
    folder = Path(folder)
    rels = [model, *[f for f in (files or []) if f != model]]
    digests = {}
    for rel in rels:
        _check_relpath(rel, str(folder))
        path = folder / rel
        if not path.is_file():
            raise BadModel(f"{path}: package file is missing")
        digests[rel] = sha256_file(path)
    created = fields.pop("created", None) or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fields.setdefault("schema", max(PACKAGE_SCHEMA, spec.schema))
    manifest = PackageManifest(
        name=name, version=version, spec=spec, model=model, files=digests, created=created, **fields
    )
    PackageManifest.from_dict(json.loads(manifest.to_json()), str(folder / MANIFEST))  # one validator
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, folder / MANIFEST)
    return manifest


def _load_manifest_bytes(raw: bytes, where: str) -> PackageManifest:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadModel(f"{where}: not valid JSON ({exc})") from None
    return PackageManifest.from_dict(data, where)


def read_manifest(package: str | Path) -> PackageManifest:
    """Read (without verifying hashes) the manifest of a package folder or zip."""
    package = Path(package)
    if package.is_dir():
        path = package / MANIFEST
        if not path.is_file():
            raise BadModel(f"{package}: not a model package (no {MANIFEST})")
        return _load_manifest_bytes(path.read_bytes(), str(path))
    with _open_zip(package) as zf:
        try:
            raw = zf.read(MANIFEST)
        except KeyError:
            raise BadModel(f"{package}: not a model package (no {MANIFEST} in the archive)") from None
        return _load_manifest_bytes(raw, f"{package}:{MANIFEST}")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.is_file():
        raise BadModel(f"{path}: no such package file or folder")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise BadModel(f"{path}: not a zip archive nor a package folder") from None


def verify(package: str | Path) -> PackageManifest:
    """Check every file's sha256 against the manifest; return the manifest.

    Raises :class:`BadModel` naming the first missing or mismatching file.
    """
    package = Path(package)
    manifest = read_manifest(package)
    if package.is_dir():
        for rel, digest in manifest.files.items():
            path = package / rel
            if not path.is_file():
                raise BadModel(f"{package}: file {rel!r} listed in {MANIFEST} is missing")
            actual = sha256_file(path)
            if actual != digest:
                raise BadModel(f"{package}: sha256 mismatch for {rel!r} (manifest {digest[:12]}…, file {actual[:12]}…)")
        return manifest
    with _open_zip(package) as zf:
        names = set(zf.namelist())
        for rel, digest in manifest.files.items():
            if rel not in names:
                raise BadModel(f"{package}: file {rel!r} listed in {MANIFEST} is missing from the archive")
            h = hashlib.sha256()
            with zf.open(rel) as f:
                for chunk in iter(lambda f=f: f.read(_CHUNK), b""):
                    h.update(chunk)
            if h.hexdigest() != digest:
                raise BadModel(f"{package}: sha256 mismatch for {rel!r} (manifest {digest[:12]}…, archive {h.hexdigest()[:12]}…)")
    return manifest


def pack(folder: str | Path, out: str | Path) -> Path:
    """Verify ``folder`` and write it as one zip (manifest first, then the listed files) for download."""
    folder, out = Path(folder), Path(out)
    manifest = verify(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(folder / MANIFEST, MANIFEST)
        for rel in sorted(manifest.files):
            zf.write(folder / rel, rel)
    os.replace(tmp, out)
    return out


def unpack(archive: str | Path, dest: str | Path, max_bytes: int = MAX_UNPACKED_BYTES) -> PackageManifest:
    """Safely extract a package zip into ``dest`` (created) and verify it.

    Refuses absolute names, ``..`` components, links, duplicates and more than ``max_bytes``
    unpacked; only the manifest and the files it lists are extracted.
    """
    archive, dest = Path(archive), Path(dest)
    manifest = read_manifest(archive)
    with _open_zip(archive) as zf:
        infos = zf.infolist()
        seen: set[str] = set()
        for info in infos:
            _check_relpath(info.filename, str(archive))
            if info.filename in seen:
                raise BadModel(f"{archive}: duplicate entry {info.filename!r}")
            seen.add(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise BadModel(f"{archive}: entry {info.filename!r} is a link; links are refused")
        wanted = [i for i in infos if i.filename == MANIFEST or i.filename in manifest.files]
        total = sum(i.file_size for i in wanted)
        if total > max_bytes:
            raise TooLarge(f"{archive}: unpacks to {total} bytes, over the {max_bytes} byte limit")
        dest.mkdir(parents=True, exist_ok=True)
        root = dest.resolve()
        for info in wanted:
            target = (root / info.filename).resolve()
            if root not in target.parents:
                raise BadModel(f"{archive}: entry {info.filename!r} escapes the destination")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    return verify(dest)


def open_package(package: str | Path) -> tuple[Path, PackageManifest, tempfile.TemporaryDirectory | None]:
    """A verified package folder for ``package`` (a folder, or a zip unpacked to a temp folder).

    Returns ``(folder, manifest, tempdir)``; keep ``tempdir`` alive as long as the folder is used
    (it is ``None`` for a folder package).
    """
    package = Path(package)
    if package.is_dir():
        return package, verify(package), None
    if not package.is_file() or not zipfile.is_zipfile(package):
        raise BadModel(f"{package}: neither a package folder nor a zip archive")
    tmp = tempfile.TemporaryDirectory(prefix="ymir-package-")
    try:
        manifest = unpack(package, tmp.name)
    except BaseException:
        tmp.cleanup()
        raise
    return Path(tmp.name), manifest, tmp
