"""Mosquitto's files made from the device table: password file, ACL and a ready ``mosquitto.conf``.

The embedded Mosquitto (``YMIR_BROKER_AUTH=1``) and ``ymir-hub broker config`` (for a Mosquitto an
operator runs) use the same text, so what the tests prove of one holds for the other:

* every device is a user (its id) whose password is its device token (Mosquitto ``$7$`` hash);
* the hub's user (:data:`HUB_USER`) reads and writes everything under the prefix;
* a device reads only its own ``desired`` and ``cmd`` topics and writes only its own uplinks
  (``status``, ``reported``, ``cmd/result``, ``metrics``, ``predictions``) — never another
  device's topics, nor its own desired state;
* ``use_username_as_clientid``: the client id is the user name, so a device cannot take over another
  device's session by connecting with its client id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HUB_USER = "ymir-hub"  # the hub's own broker user; no device may have this id
DOWNLINK = ("desired", "cmd")  # hub -> device
UPLINK = ("status", "reported", "cmd/result", "metrics", "predictions")  # device -> hub


@dataclass(frozen=True)
class TlsListener:
    """A TLS listener: ``host:port`` and the server's PEM certificate (chain) and key."""

    host: str
    port: int
    cert: Path
    key: Path


def acl_text(prefix: str, hub_user: str = HUB_USER) -> str:
    """The ACL: the hub everything under ``prefix``, each device (``%u``) only its own topics."""
    lines = [f"user {hub_user}", f"topic readwrite {prefix}/#", ""]
    lines += [f"pattern read {prefix}/devices/%u/{kind}" for kind in DOWNLINK]
    lines += [f"pattern write {prefix}/devices/%u/{kind}" for kind in UPLINK]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, mode 0600 (a password file is replaced, never half-written)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def passwd_text(entries: list[tuple[str, str]]) -> str:
    """A Mosquitto password file from ``(user, $7$ hash)`` pairs."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in entries)


def read_passwd(path: Path) -> dict[str, str]:
    """``user -> hash`` of an existing password file (empty when there is none)."""
    path = Path(path)
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user:
            out[user] = hashed
    return out


def mosquitto_conf(listen: tuple[str, int], *, passwd: Path | None, acl: Path | None,
                   tls: TlsListener | None = None, run_as: str | None = None,
                   persistence_dir: Path | None = None, log_file: Path | None = None) -> str:
    """A ``mosquitto.conf``: a plain listener on ``listen``, an optional TLS one, passwords + ACL
    (anonymous access only when ``passwd`` is None), persistence and logging."""
    host, port = listen
    # use_username_as_clientid belongs to the listener above it (certfile/keyfile too); the access
    # settings are global (per_listener_settings is false)
    per_listener = ["use_username_as_clientid true"] if passwd is not None else []
    out = [f"listener {port} {host}" if host else f"listener {port}", *per_listener]
    if tls is not None:
        out += [f"listener {tls.port} {tls.host}" if tls.host else f"listener {tls.port}", *per_listener,
                f"certfile {Path(tls.cert).resolve()}", f"keyfile {Path(tls.key).resolve()}",
                "tls_version tlsv1.2"]
    if passwd is None:
        out.append("allow_anonymous true")
    else:
        out += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
    if run_as:
        out.append(f"user {run_as}")
    if persistence_dir is not None:
        out += ["persistence true", f"persistence_location {persistence_dir}/", "autosave_interval 10"]
    out += ["max_queued_messages 100000", "max_inflight_messages 100"]
    if log_file is not None:
        out += [f"log_dest file {log_file}", "log_type error", "log_type warning", "log_type notice"]
    return "\n".join(out) + "\n"


def write_config_dir(folder: Path, prefix: str, devices: list[tuple[str, str]], listen: tuple[str, int], *,
                     tls: TlsListener | None = None, run_as: str | None = None, persistence: bool = True,
                     new_hub_password: bool = False) -> dict:
    """Write ``mosquitto.conf``, ``passwd`` and ``acl`` for a Mosquitto an operator runs
    (``ymir-hub broker config``). The hub's entry already in ``folder/passwd`` is kept (so a rerun after
    devices change does not lock the running hub out) unless ``new_hub_password``; a new one's password
    is returned once, as ``hub_password``."""
    import secrets

    from hub.fleet.devices import mosquitto_hash

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    passwd, acl, conf = folder / "passwd", folder / "acl", folder / "mosquitto.conf"
    hub_hash = None if new_hub_password else read_passwd(passwd).get(HUB_USER)
    hub_password = None
    if hub_hash is None:
        hub_password = secrets.token_urlsafe(24)
        hub_hash = mosquitto_hash(hub_password)
    write_private(passwd, passwd_text([(HUB_USER, hub_hash), *devices]))
    acl.write_text(acl_text(prefix))
    conf.write_text(mosquitto_conf(listen, passwd=passwd, acl=acl, tls=tls, run_as=run_as,
                                   persistence_dir=folder if persistence else None))
    return {"config": str(conf), "passwd": str(passwd), "acl": str(acl), "devices": [d for d, _ in devices],
            "hub_user": HUB_USER, "hub_password": hub_password}
