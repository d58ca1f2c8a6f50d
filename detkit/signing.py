"""Signed model packages: the hub signs each package's ``manifest.json`` (Ed25519); a device that holds the
hub's public key refuses a package whose signature does not verify.

The signature covers the manifest's exact bytes, and the manifest lists every file's sha256, so one signature
vouches for the whole package: a changed file fails its sha256 against the signed manifest, a changed manifest
fails the signature. It travels in the zip as ``manifest.sig`` (base64), next to the manifest.

A public key is written ``ed25519:<base64 of the 32 raw bytes>`` (what ``ymir-hub device add`` prints and the
agent's ``hub_public_key`` setting takes).
"""

from __future__ import annotations

import base64
import binascii
import os
import zipfile
from pathlib import Path

from detkit.errors import BadInput, BadModel

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PREFIX = "ed25519:"


def load_or_create_key(path: str | Path):
    """The Ed25519 private key in ``path`` (PEM), made (mode 0600) when the file does not exist yet."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise BadInput(f"{path}: not an Ed25519 private key")
        return key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(tmp, path)
    return key


def public_key_text(private_key) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: str):
    """An ``ed25519:<base64>`` public key; BadInput naming what is wrong."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if not isinstance(text, str) or not text.startswith(PREFIX):
        raise BadInput(f"public key {str(text)[:20]!r}: expected '{PREFIX}<base64>'")
    try:
        raw = base64.b64decode(text[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise BadInput("public key: not 32 bytes of base64 after 'ed25519:'") from None


def sign_zip(zip_path: str | Path, private_key) -> None:
    """Add (or replace) ``manifest.sig`` in the package zip: the signature of its ``manifest.json``."""
    zip_path = Path(zip_path)
    tmp = zip_path.with_name(zip_path.name + ".signing")
    with zipfile.ZipFile(zip_path) as src:
        try:
            manifest = src.read(MANIFEST)
        except KeyError:
            raise BadModel(f"{zip_path.name}: no {MANIFEST} to sign") from None
        signature = base64.b64encode(private_key.sign(manifest))
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                if info.filename == SIGNATURE:
                    continue
                with src.open(info) as f:
                    dst.writestr(info, f.read())
                if info.filename == MANIFEST:
                    dst.writestr(SIGNATURE, signature)
    os.replace(tmp, zip_path)


def verify_zip(zip_path: str | Path, public_key: str) -> None:
    """BadModel ``signature: ...`` unless the zip's ``manifest.sig`` is the holder of ``public_key``'s
    signature of its ``manifest.json`` (the files' sha256 against that manifest are checked on unpacking)."""
    from cryptography.exceptions import InvalidSignature

    key = parse_public_key(public_key)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = set(zf.namelist())
            if SIGNATURE not in names:
                raise BadModel("signature: the package is not signed (no manifest.sig)")
            manifest, signature = zf.read(MANIFEST), zf.read(SIGNATURE)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise BadModel(f"signature: cannot read the package ({exc})") from None
    try:
        key.verify(base64.b64decode(signature, validate=True), manifest)
    except (InvalidSignature, binascii.Error, ValueError):
        raise BadModel("signature: manifest.sig does not verify with the hub's public key "
                       "(package changed after signing, or signed by another hub)") from None
