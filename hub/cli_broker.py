"""``ymir-hub broker config``: a ready Mosquitto configuration for the current device table.

For operators who run their own Mosquitto (the embedded one writes the same files itself, see
:mod:`hub.fleet.broker_files`): ``mosquitto.conf`` + ``passwd`` + ``acl``. Rerun it after devices
change and reload the broker (``kill -HUP``); the hub's own entry is kept across reruns.
"""

from __future__ import annotations

import click

from detkit.errors import BadInput
from hub.cli import CliContext, emit, json_option, pass_cli


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"{option} {value!r}: use host:port (or :port for every interface)")
    return host, int(port)


@click.group()
def broker() -> None:
    """The MQTT broker: a ready Mosquitto configuration from the device table."""


@broker.command("config")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for mosquitto.conf, passwd and acl (created; passwd is mode 0600).")
@click.option("--listen", default=":1883", show_default=True, help="host:port of the plain listener (:port: all interfaces).")
@click.option("--tls-listen", default=None, help="host:port of a TLS listener (needs --tls-cert and --tls-key).")
@click.option("--tls-cert", default=None, type=click.Path(dir_okay=False, exists=True), help="PEM server certificate (chain).")
@click.option("--tls-key", default=None, type=click.Path(dir_okay=False, exists=True), help="PEM private key of it.")
@click.option("--run-as", default=None, help="Mosquitto's 'user' (default: Mosquitto's own, 'mosquitto' when started as root).")
@click.option("--no-persistence", is_flag=True, help="Leave persistence out (retained desired states then die with the broker).")
@click.option("--new-hub-password", is_flag=True, help="Give the hub's broker user a new password (printed once).")
@json_option
@pass_cli
def broker_config(cli: CliContext, out_dir: str, listen: str, tls_listen: str | None, tls_cert: str | None,
                  tls_key: str | None, run_as: str | None, no_persistence: bool, new_hub_password: bool,
                  as_json: bool) -> None:
    """Write mosquitto.conf + passwd + acl: every device a user (id, token), each kept to its own topics."""
    from pathlib import Path

    from hub.fleet.broker_files import TlsListener, write_config_dir
    from hub.store import fleet as fleet_store

    tls = None
    if tls_listen:
        if not (tls_cert and tls_key):
            raise BadInput("--tls-listen needs --tls-cert and --tls-key")
        tls = TlsListener(*_host_port(tls_listen, "--tls-listen"), Path(tls_cert), Path(tls_key))
    elif tls_cert or tls_key:
        raise BadInput("--tls-cert/--tls-key need --tls-listen host:port")
    devices = fleet_store.mqtt_credentials(cli.database)
    without = sorted(set(fleet_store.device_ids(cli.database)) - {d for d, _ in devices})
    out = write_config_dir(Path(out_dir), cli.settings.mqtt_prefix, devices, _host_port(listen, "--listen"), tls=tls,
                           run_as=run_as, persistence=not no_persistence, new_hub_password=new_hub_password)
    out["devices_without_password"] = without

    def text(o: dict) -> str:
        lines = [f"wrote {o['config']}, {o['passwd']}, {o['acl']} ({len(o['devices'])} devices)"]
        if o["hub_password"]:
            lines.append(f"hub broker user {o['hub_user']}, password (shown once): {o['hub_password']}\n"
                         f"  the hub: YMIR_MQTT_URL=mqtt://{o['hub_user']}:<password>@<broker host>:<port>")
        if without:
            lines.append(f"no broker password for {', '.join(without)} (provisioned before broker passwords): "
                         "give each a new token with 'ymir-hub device token ID' and rerun")
        lines.append("reload a running Mosquitto after devices change: kill -HUP <its pid>")
        return "\n".join(lines)

    emit(out, as_json, text)


COMMANDS = [broker]
