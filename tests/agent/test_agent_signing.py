"""Signed packages: with the hub's public key, an agent deploys only packages whose manifest signature
verifies; a tampered file, a tampered manifest, another hub's signature or no signature are refused with
``failed`` reason ``signature``/``sha256`` and the old model keeps serving."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from agent_helpers import make_detector_onnx, make_package_zip
from test_agent_store import dep, make_store

from detkit.errors import BadInput, BadModel
from detkit.signing import load_or_create_key, public_key_text, sign_zip, verify_zip


def _rezip(data: bytes, change) -> bytes:
    """The zip ``data`` with ``change(name, bytes) -> bytes`` applied to each entry."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, change(info.filename, src.read(info)))
    return out.getvalue()


@pytest.fixture
def keys(tmp_path):
    hub_key = load_or_create_key(tmp_path / "keys" / "hub.pem")
    other = load_or_create_key(tmp_path / "keys" / "other.pem")
    assert (tmp_path / "keys" / "hub.pem").stat().st_mode & 0o777 == 0o600
    assert public_key_text(load_or_create_key(tmp_path / "keys" / "hub.pem")) == public_key_text(hub_key)
    return hub_key, other


def _signed(tmp_path, key, name="p", version="1") -> bytes:
    z = make_package_zip(tmp_path / name, tmp_path / f"{name}.zip", version=version)
    sign_zip(z, key)
    return z.read_bytes()


def test_a_signed_package_deploys_and_tampered_ones_are_refused(tmp_path, hub, keys):
    hub_key, other = keys
    store, registry, reports = make_store(tmp_path, hub, hub_public_key=public_key_text(hub_key))
    good = _signed(tmp_path, hub_key)
    assert store.apply(dep(hub, good, 1)) and reports[-1][0][2] == "healthy"
    served = registry.get("det")

    def refused(data: bytes, revision: int) -> str:
        reports.clear()
        assert not store.apply(dep(hub, data, revision))
        name, rev, state, reason = reports[-1][0]
        assert (rev, state) == (revision, "failed")
        assert registry.get("det") is served and store.current("det")["revision"] == 1  # the old model serves
        return reason

    # a model file changed after signing: the signed manifest's sha256 no longer matches it
    tampered_file = _rezip(good, lambda n, b: b + b"\0" if n.endswith(".onnx") else b)
    assert "sha256 mismatch" in refused(tampered_file, 2)

    # the manifest changed (its files re-hashed to match): the signature no longer verifies
    def bump(n, b):
        if n != "manifest.json":
            return b
        m = json.loads(b)
        m["version"] = "999"
        return json.dumps(m).encode()
    assert refused(_rezip(good, bump), 3).startswith("signature: manifest.sig does not verify")
    assert refused(_signed(tmp_path, other, "o"), 4).startswith("signature: manifest.sig does not verify")
    unsigned = make_package_zip(tmp_path / "u", tmp_path / "u.zip").read_bytes()
    assert refused(unsigned, 5) == "signature: the package is not signed (no manifest.sig)"
    assert refused(make_detector_onnx(tmp_path / "bare.onnx").read_bytes(), 6).startswith(
        "signature: a bare model file carries no signature")
    # and the next good package still goes through
    assert store.apply(dep(hub, _signed(tmp_path, hub_key, "p2", version="2"), 7))
    assert registry.get("det").revision == 7


def test_without_a_key_unsigned_packages_still_deploy_and_bad_keys_are_refused(tmp_path, hub):
    from agent.config import load_settings

    store, registry, reports = make_store(tmp_path, hub)
    assert store.apply(dep(hub, make_package_zip(tmp_path / "u", tmp_path / "u.zip").read_bytes(), 1))
    with pytest.raises(BadInput, match="hub_public_key"):
        load_settings(env={}, overrides={"device_id": "d", "hub_public_key": "rsa:xyz"})
    with pytest.raises(BadInput, match="hub_public_key"):
        load_settings(env={}, overrides={"device_id": "d", "hub_public_key": "ed25519:bm90MzJieXRlcw=="})


def test_signing_twice_replaces_the_signature(tmp_path, keys):
    hub_key, _ = keys
    z = make_package_zip(tmp_path / "p", tmp_path / "p.zip")
    sign_zip(z, hub_key)
    sign_zip(z, hub_key)
    with zipfile.ZipFile(z) as zf:
        assert zf.namelist().count("manifest.sig") == 1
    verify_zip(z, public_key_text(hub_key))
    with pytest.raises(BadModel, match="does not verify"):
        verify_zip(z, public_key_text(keys[1]))
