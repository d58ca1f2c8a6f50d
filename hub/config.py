"""Hub settings: read once (CLI flags, then ``YMIR_*`` environment, then defaults), validated, passed down.

This is the only module of the hub that reads ``os.environ``. Everything else receives a
:class:`Settings` object. The workspace layout (DESIGN.md, "Storage") is defined here too:
``hub.db`` · ``assets/`` · ``models/`` · ``jobs/`` · ``sharing/`` · ``cache/`` (thumbnails, temp files).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from detkit.errors import BadInput

DEFAULT_HOME = "ymir-workplace"
UNKNOWN_STRATEGIES = ("stop", "ignore", "add")

#: Every environment variable the hub reads (documented in docs/cli.md; a test enforces it).
ENV_VARS = {
    "YMIR_HOME": "workspace folder (default ./ymir-workplace)",
    "YMIR_MAX_UPLOAD_MB": "largest zip upload or URL download, in MiB (default 2048)",
    "YMIR_MAX_IMAGES": "most images one import may hold (default 200000)",
    "YMIR_ALLOW_URL_IMPORT": "1/0: allow dataset import from http(s) URLs (default 1)",
    "YMIR_SECRET_KEY": "session signing key (default: generated once, kept in the workspace)",
    "YMIR_JOB_BACKEND": "where executor jobs run: local (child processes, default) or docker",
    "YMIR_DOCKER_HOST": "docker engine URL for the docker job backend (default: the SDK's default)",
    "YMIR_JOB_CONCURRENCY": "executor jobs run at once (default 1)",
    "YMIR_RUN_JOBS": "1/0: run queued jobs inside the hub server (default 1; 0 when 'ymir-hub worker' does)",
}
JOB_BACKENDS = ("local", "docker")


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise BadInput(f"{name}={raw!r} must be positive")
    return value


def _bool_env(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise BadInput(f"{name}={raw!r} is not a boolean (use 1 or 0)")


@dataclass(frozen=True)
class Settings:
    """Validated hub settings. Paths are absolute."""

    home: Path
    max_upload_bytes: int = 2048 * 1024 * 1024
    max_images: int = 200_000
    allow_url_import: bool = True
    secret_key: str | None = None
    testing: bool = False
    job_backend: str = "local"
    docker_host: str | None = None
    job_concurrency: int = 1
    run_jobs: bool = True
    extra: dict = field(default_factory=dict)

    # --- workspace layout -------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "hub.db"

    @property
    def assets_dir(self) -> Path:
        return self.home / "assets"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def sharing_dir(self) -> Path:
        return self.home / "sharing"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def thumbs_dir(self) -> Path:
        return self.cache_dir / "thumbs"

    @property
    def tmp_dir(self) -> Path:
        return self.cache_dir / "tmp"

    @property
    def exports_dir(self) -> Path:
        return self.cache_dir / "exports"

    def layout_dirs(self) -> list[Path]:
        """The folders a workspace must have."""
        return [
            self.assets_dir,
            self.models_dir,
            self.jobs_dir,
            self.sharing_dir,
            self.thumbs_dir,
            self.tmp_dir,
            self.exports_dir,
        ]

    def session_secret(self) -> str:
        """The session signing key: explicit, else one generated once and kept in the workspace."""
        if self.secret_key:
            return self.secret_key
        path = self.home / ".secret_key"
        if path.exists():
            return path.read_text().strip()
        self.home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key

    def with_(self, **changes) -> Settings:
        """A copy with some fields changed (tests)."""
        return replace(self, **changes)


def resolve_home(home: str | Path | None, env: dict[str, str] | None = None) -> Path:
    """``--home`` if given, else ``$YMIR_HOME``, else ``./ymir-workplace``; made absolute."""
    env = dict(os.environ) if env is None else env
    chosen = home or env.get("YMIR_HOME") or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def load_settings(home: str | Path | None = None, env: dict[str, str] | None = None, **overrides) -> Settings:
    """Build and validate :class:`Settings` from flags (``home``, ``overrides``) and the environment."""
    env = dict(os.environ) if env is None else env
    values = {
        "home": resolve_home(home, env),
        "max_upload_bytes": _int_env(env, "YMIR_MAX_UPLOAD_MB", 2048) * 1024 * 1024,
        "max_images": _int_env(env, "YMIR_MAX_IMAGES", 200_000),
        "allow_url_import": _bool_env(env, "YMIR_ALLOW_URL_IMPORT", True),
        "secret_key": env.get("YMIR_SECRET_KEY") or None,
        "job_backend": env.get("YMIR_JOB_BACKEND") or "local",
        "docker_host": env.get("YMIR_DOCKER_HOST") or None,
        "job_concurrency": _int_env(env, "YMIR_JOB_CONCURRENCY", 1),
        "run_jobs": _bool_env(env, "YMIR_RUN_JOBS", True),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["job_backend"] not in JOB_BACKENDS:
        raise BadInput(f"job backend {values['job_backend']!r}: use one of {', '.join(JOB_BACKENDS)}")
    home_path = values["home"]
    if home_path.exists() and not home_path.is_dir():
        raise BadInput(f"workspace {home_path} exists and is not a folder")
    return Settings(**values)
