"""Hub settings: read once (CLI flags, then ``YMIR_*`` environment, then defaults), validated, passed down.

This is the only module of the hub that reads ``os.environ``. Everything else receives a
:class:`Settings` object. The workspace layout (DESIGN.md, "Storage") is defined here too:
``hub.db`` · ``assets/`` · ``models/`` · ``jobs/`` · ``sharing/`` · ``cache/`` (thumbnails, temp files).
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property
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
    "YMIR_JOB_BACKEND": "where executor jobs run: local (child processes, default), docker or kubernetes",
    "YMIR_DOCKER_HOST": "docker engine URL for the docker job backend (default: the SDK's default)",
    "YMIR_K8S_NAMESPACE": "namespace of the kubernetes job backend's Jobs (default default)",
    "YMIR_K8S_PVC": "kubernetes job backend: the PersistentVolumeClaim holding the workspace (required with it)",
    "YMIR_K8S_KUBECONFIG": "kubernetes job backend: kubeconfig file (default: in-cluster, else ~/.kube/config)",
    "YMIR_K8S_CONTEXT": "kubernetes job backend: kubeconfig context (default: the current one)",
    "YMIR_K8S_HOST": "kubernetes job backend: API server URL, overriding the kubeconfig's",
    "YMIR_K8S_SERVICE_ACCOUNT": "kubernetes job backend: service account of the job pods (default: the namespace's)",
    "YMIR_K8S_GPU_RESOURCE": "kubernetes job backend: resource name a GPU count asks for (default nvidia.com/gpu)",
    "YMIR_K8S_IMAGE_PULL_POLICY": "kubernetes job backend: imagePullPolicy of the job pods (default IfNotPresent)",
    "YMIR_JOB_CONCURRENCY": "executor jobs run at once (default 1)",
    "YMIR_RUN_JOBS": "1/0: run queued jobs inside the hub server (default 1; 0 when 'ymir-hub worker' does)",
    "YMIR_FLEET": "1/0: connect the fleet (MQTT broker, device ingest, rollouts) in the hub server (default 1)",
    "YMIR_MQTT_URL": "broker URL mqtt://host:port (empty: an embedded broker is started)",
    "YMIR_MQTT_PREFIX": "MQTT topic prefix (default ymir/v1)",
    "YMIR_EMBEDDED_BROKER": "embedded broker kind when no URL: auto (mosquitto, else amqtt), mosquitto, amqtt",
    "YMIR_BROKER_LISTEN": "host:port the embedded broker listens on (default 127.0.0.1:1883; port 0: any free)",
    "YMIR_BROKER_AUTH": "1/0: the embedded Mosquitto requires passwords (device id + device token) and per-device ACLs (default 0)",
    "YMIR_BROKER_TLS_LISTEN": "host:port of the embedded Mosquitto's TLS listener for devices (empty: none; port 0: any free)",
    "YMIR_BROKER_TLS_CERT": "PEM certificate (chain) of the embedded Mosquitto's TLS listener (required with YMIR_BROKER_TLS_LISTEN)",
    "YMIR_BROKER_TLS_KEY": "PEM private key of the embedded Mosquitto's TLS listener (required with YMIR_BROKER_TLS_LISTEN)",
    "YMIR_MQTT_CA_FILE": "PEM CA file the hub trusts for an mqtts:// YMIR_MQTT_URL (default: the system's CA store)",
    "YMIR_URL_BLOCK_PRIVATE": "1/0: URL imports refuse hosts (and redirects) resolving to loopback, private, link-local or reserved addresses (default 0)",
    "YMIR_LOGIN_MAX_FAILURES": "failed logins per client address and per user name within YMIR_LOGIN_WINDOW_S before logins answer 429 (10)",
    "YMIR_LOGIN_WINDOW_S": "seconds of the login rate limit's sliding window (600)",
    "YMIR_THREAD_SWITCH_US": "ymir-hub serve's interpreter switch interval in microseconds (1000; Python's is 5000)",
    "YMIR_PUBLIC_URL": "the hub's URL as devices reach it, for artifact links (default: hub-relative links)",
    "YMIR_ROLLOUT_TIMEOUT_S": "seconds a device may stay downloading/verifying/loading before it is timed out (600)",
    "YMIR_CAPTURE_VERSION_FRAMES": "frames per edge-captures dataset version before a new one starts (1000)",
    "YMIR_STORAGE": "where asset bytes live: local (the workspace's assets/ folder, default) or s3",
    "YMIR_S3_BUCKET": "s3 storage: the bucket (required with it; it must exist)",
    "YMIR_S3_ENDPOINT_URL": "s3 storage: endpoint of an S3-compatible server, e.g. http://minio:9000 (default: AWS)",
    "YMIR_S3_PREFIX": "s3 storage: key prefix inside the bucket, no leading or trailing / (default: none)",
    "YMIR_S3_REGION": "s3 storage: region name (default: boto3's, e.g. AWS_DEFAULT_REGION)",
    "YMIR_LABEL_STUDIO_URL": "Label Studio server URL for the label_studio labeling backend (e.g. http://localhost:8080)",
    "YMIR_LABEL_STUDIO_TOKEN": "Label Studio access token: a personal access token (JWT) or a legacy token",
    "YMIR_LABEL_STUDIO_SYNC_S": "seconds between pulls of open Label Studio tasks' annotations in the hub server (300; 0: off)",
}
JOB_BACKENDS = ("local", "docker", "kubernetes")
#: ``YMIR_S3_<KEY>`` -> the s3 asset store's config key
S3_KEYS = ("bucket", "endpoint_url", "prefix", "region")
#: ``YMIR_K8S_<KEY>`` -> the kubernetes backend's config key
K8S_KEYS = ("namespace", "pvc", "kubeconfig", "context", "host", "service_account", "gpu_resource",
            "image_pull_policy")


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


def _seconds_env(env: dict[str, str], name: str, default: int) -> int:
    """A whole number of seconds, 0 allowed (off)."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not an integer") from None
    if value < 0:
        raise BadInput(f"{name}={raw!r} must be 0 (off) or a positive number of seconds")
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
    k8s: dict = field(default_factory=dict)
    job_concurrency: int = 1
    run_jobs: bool = True
    fleet_enabled: bool = False
    mqtt_url: str | None = None
    mqtt_prefix: str = "ymir/v1"
    embedded_broker: str = "auto"
    broker_listen: str = "127.0.0.1:1883"
    broker_auth: bool = False
    broker_tls_listen: str | None = None
    broker_tls_cert: Path | None = None
    broker_tls_key: Path | None = None
    mqtt_ca_file: Path | None = None
    url_block_private: bool = False
    login_max_failures: int = 10
    login_window_s: int = 600
    thread_switch_us: int = 1000
    public_url: str | None = None
    rollout_timeout_s: int = 600
    capture_version_frames: int = 1000
    label_studio_url: str | None = None
    label_studio_token: str | None = None
    label_studio_sync_s: int = 300
    storage: str = "local"
    s3: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    # --- workspace layout -------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.home / "hub.db"

    @property
    def assets_dir(self) -> Path:
        return self.home / "assets"

    @cached_property
    def asset_store(self):
        """The :class:`hub.storage.AssetStore` these settings select (made on first use)."""
        from hub.storage import open_store

        return open_store(self)

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


def _check_fleet(values: dict) -> None:
    """Refuse fleet settings a broker connection would choke on later."""
    url = values.get("mqtt_url")
    if url and not url.startswith(("mqtt://", "mqtts://", "tcp://", "ssl://")):
        raise BadInput(f"YMIR_MQTT_URL={url!r}: use mqtt://host:port or mqtts://host:port")
    prefix = values.get("mqtt_prefix") or ""
    if not prefix or "+" in prefix or "#" in prefix or prefix.endswith("/"):
        raise BadInput(f"YMIR_MQTT_PREFIX={prefix!r}: non-empty, no wildcards, no trailing /")
    if values.get("embedded_broker") not in ("auto", "mosquitto", "amqtt"):
        raise BadInput(f"YMIR_EMBEDDED_BROKER={values.get('embedded_broker')!r}: use auto, mosquitto or amqtt")
    host, _, port = str(values.get("broker_listen") or "").rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise BadInput(f"YMIR_BROKER_LISTEN={values.get('broker_listen')!r}: use host:port")
    _check_broker_tls(values)
    public = values.get("public_url")
    if public and not public.startswith(("http://", "https://")):
        raise BadInput(f"YMIR_PUBLIC_URL={public!r}: use an http(s) URL")


def _pem_file(values: dict, key: str, var: str) -> None:
    if values.get(key) is None:
        return
    path = Path(values[key]).expanduser().resolve()
    if not path.is_file():
        raise BadInput(f"{var}={str(values[key])!r}: no such file")
    values[key] = path


def _check_broker_tls(values: dict) -> None:
    """The embedded broker's TLS listener needs host:port, a certificate and its key, all or none."""
    for key, var in (("broker_tls_cert", "YMIR_BROKER_TLS_CERT"), ("broker_tls_key", "YMIR_BROKER_TLS_KEY"),
                     ("mqtt_ca_file", "YMIR_MQTT_CA_FILE")):
        _pem_file(values, key, var)
    listen = values.get("broker_tls_listen")
    if listen:
        host, _, port = str(listen).rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise BadInput(f"YMIR_BROKER_TLS_LISTEN={listen!r}: use host:port")
        if not values.get("broker_tls_cert") or not values.get("broker_tls_key"):
            raise BadInput("YMIR_BROKER_TLS_LISTEN needs YMIR_BROKER_TLS_CERT and YMIR_BROKER_TLS_KEY (PEM files)")
    elif values.get("broker_tls_cert") or values.get("broker_tls_key"):
        raise BadInput("YMIR_BROKER_TLS_CERT/YMIR_BROKER_TLS_KEY are set but YMIR_BROKER_TLS_LISTEN is not: "
                       "set the TLS listener's host:port")


def _check_storage(values: dict) -> None:
    """Refuse storage settings the asset store would choke on later."""
    from hub.storage import unavailable_reason

    key = values.get("storage")
    reason = unavailable_reason(key)
    if reason:
        raise BadInput(f"YMIR_STORAGE={key!r}: {reason}")
    if key != "s3":
        return
    s3 = values.get("s3") or {}
    if not s3.get("bucket"):
        raise BadInput("YMIR_STORAGE=s3 needs YMIR_S3_BUCKET: the bucket that holds the assets")
    url = s3.get("endpoint_url")
    if url and not url.startswith(("http://", "https://")):
        raise BadInput(f"YMIR_S3_ENDPOINT_URL={url!r}: use an http(s) URL")
    prefix = s3.get("prefix") or ""
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise BadInput(f"YMIR_S3_PREFIX={prefix!r}: no leading, trailing or double /")


def apply_thread_switch(settings) -> None:
    """The server process's interpreter switch interval (``YMIR_THREAD_SWITCH_US``, 1 ms; Python's
    own is 5 ms). Page threads give up the interpreter at every SQLite row; while the fleet's ingest
    worker keeps it busy, each time back costs up to one interval, and a page reading a few hundred
    rows waited seconds at 5 ms (scripts/bench/fleet.py, issue 15.3)."""
    sys.setswitchinterval(settings.thread_switch_us / 1e6)


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
        "k8s": {k: env[f"YMIR_K8S_{k.upper()}"] for k in K8S_KEYS if env.get(f"YMIR_K8S_{k.upper()}")},
        "job_concurrency": _int_env(env, "YMIR_JOB_CONCURRENCY", 1),
        "run_jobs": _bool_env(env, "YMIR_RUN_JOBS", True),
        # a hub built for tests connects no fleet unless told to
        "fleet_enabled": _bool_env(env, "YMIR_FLEET", not overrides.get("testing", False)),
        "mqtt_url": env.get("YMIR_MQTT_URL") or None,
        "mqtt_prefix": env.get("YMIR_MQTT_PREFIX") or "ymir/v1",
        "embedded_broker": env.get("YMIR_EMBEDDED_BROKER") or "auto",
        "broker_listen": env.get("YMIR_BROKER_LISTEN") or "127.0.0.1:1883",
        "broker_auth": _bool_env(env, "YMIR_BROKER_AUTH", False),
        "broker_tls_listen": env.get("YMIR_BROKER_TLS_LISTEN") or None,
        "broker_tls_cert": env.get("YMIR_BROKER_TLS_CERT") or None,
        "broker_tls_key": env.get("YMIR_BROKER_TLS_KEY") or None,
        "mqtt_ca_file": env.get("YMIR_MQTT_CA_FILE") or None,
        "url_block_private": _bool_env(env, "YMIR_URL_BLOCK_PRIVATE", False),
        "login_max_failures": _int_env(env, "YMIR_LOGIN_MAX_FAILURES", 10),
        "login_window_s": _int_env(env, "YMIR_LOGIN_WINDOW_S", 600),
        "thread_switch_us": _int_env(env, "YMIR_THREAD_SWITCH_US", 1000),
        "public_url": (env.get("YMIR_PUBLIC_URL") or "").rstrip("/") or None,
        "rollout_timeout_s": _int_env(env, "YMIR_ROLLOUT_TIMEOUT_S", 600),
        "capture_version_frames": _int_env(env, "YMIR_CAPTURE_VERSION_FRAMES", 1000),
        "label_studio_url": (env.get("YMIR_LABEL_STUDIO_URL") or "").rstrip("/") or None,
        "label_studio_token": env.get("YMIR_LABEL_STUDIO_TOKEN") or None,
        "label_studio_sync_s": _seconds_env(env, "YMIR_LABEL_STUDIO_SYNC_S", 300),
    }
    values["storage"] = env.get("YMIR_STORAGE") or "local"
    values["s3"] = {k: env[f"YMIR_S3_{k.upper()}"] for k in S3_KEYS if env.get(f"YMIR_S3_{k.upper()}")}
    values.update({k: v for k, v in overrides.items() if v is not None})
    if values["job_backend"] not in JOB_BACKENDS:
        raise BadInput(f"job backend {values['job_backend']!r}: use one of {', '.join(JOB_BACKENDS)}")
    if values["job_backend"] == "kubernetes" and not values["k8s"].get("pvc"):
        raise BadInput("YMIR_JOB_BACKEND=kubernetes needs YMIR_K8S_PVC: the claim that holds the workspace, "
                       "mounted by the hub and by every job pod")
    _check_fleet(values)
    _check_storage(values)
    ls_url = values.get("label_studio_url")
    if ls_url and not ls_url.startswith(("http://", "https://")):
        raise BadInput(f"YMIR_LABEL_STUDIO_URL={ls_url!r}: use an http(s) URL")
    home_path = values["home"]
    if home_path.exists() and not home_path.is_dir():
        raise BadInput(f"workspace {home_path} exists and is not a folder")
    return Settings(**values)
