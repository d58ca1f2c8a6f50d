"""``ymir-agent``: run the device daemon, or serve one model over HTTP with no hub and no broker.

    ymir-agent run --config agent.toml          # settings also from YMIR_AGENT_* variables
    ymir-agent serve model.onnx --port 8080     # Open Inference Protocol (+ /v1/detect for detectors)
    ymir-agent config --config agent.toml       # print the validated settings (secrets masked)

Errors a user can fix exit with status 2 and the message.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

import click

from detkit.errors import BadInput, YmirError

SECRETS = ("mqtt_password", "device_token", "http_token")


def setup_logging(level: str, file: Path | None = None) -> None:
    """Log to stderr, and to a rotating file when given (``collect_logs`` reads it)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level.upper())
    for old in [h for h in root.handlers if getattr(h, "_ymir_agent", False)]:  # called again: replace
        root.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(file, maxBytes=2 * 1024**2, backupCount=3))
    for h in handlers:
        h.setFormatter(fmt)
        h._ymir_agent = True  # type: ignore[attr-defined]
        root.addHandler(h)


def _fail(exc: YmirError) -> None:
    click.echo(f"error: {exc.message}", err=True)
    sys.exit(2)


@click.group()
@click.version_option(package_name="ymir-edge")
def main() -> None:
    """ymir-edge device agent."""


def _settings(config: str | None, device_id: str | None, require_device: bool = True):
    from agent.config import load_settings

    return load_settings(config, overrides={"device_id": device_id}, require_device=require_device)


@main.command()
@click.option("--config", "config", type=click.Path(dir_okay=False), help="agent.toml (settings also from YMIR_AGENT_*).")
@click.option("--device-id", help="Overrides device_id.")
def run(config: str | None, device_id: str | None) -> None:
    """Run the device daemon until SIGTERM/SIGINT (re-executes itself on a restart command)."""
    from agent.daemon import Agent, log_path

    try:
        settings = _settings(config, device_id)
        setup_logging(settings.log_level, log_path(settings))
        agent = Agent(settings).start()
    except YmirError as exc:
        _fail(exc)
    done = threading.Event()

    def _signal(signum, _frame):
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        done.set()
        agent.request_stop()

    signal.signal(signal.SIGTERM, _signal)
    signal.signal(signal.SIGINT, _signal)
    while not agent.wait(0.5):
        pass
    agent.stop()
    if agent.restart_requested and not done.is_set():
        logging.getLogger(__name__).info("restarting")
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "agent", *sys.argv[1:]])


@main.command()
@click.argument("model", type=click.Path(exists=True))
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--name", help="Model name in the API (default: the file's or folder's stem).")
@click.option("--backend", default=None, help="Runtime backend (default: the package's, else by file type).")
@click.option("--threads", type=int, default=4, show_default=True, help="waitress worker threads.")
@click.option("--token", envvar="YMIR_AGENT_HTTP_TOKEN", default="", help="Bearer token required by the API.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Runtime backend setting, repeatable (e.g. threads=1 for onnxruntime).")
def serve(model: str, port: int, host: str, name: str | None, backend: str | None, threads: int, token: str,
          options: tuple[str, ...]) -> None:
    """Serve one package or ONNX file over HTTP (no hub, no broker)."""
    from agent.models import ModelRegistry, ServedModel, load_detector
    from agent.server import HttpServer, create_app

    setup_logging("INFO")
    config = {}
    for opt in options:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            _fail(BadInput(f"--option {opt!r}: expected KEY=VALUE"))
        config[key] = int(value) if value.lstrip("-").isdigit() else value
    try:
        det = load_detector(model, backend=backend, **config)
    except YmirError as exc:
        _fail(exc)
    path = Path(model)
    served = ServedModel(name=name or path.stem, detector=det,
                         version=str(det.package.get("version") or "1") if det.package else "1",
                         sha256=det.sha256)
    registry = ModelRegistry()
    registry.put(served)
    registry.ready = True
    server = HttpServer(create_app(registry, token=token), host, port, threads)
    routes = "OIP" + (" + /v1/detect" if served.is_detector else "")
    click.echo(f"serving {served.name!r} ({routes}) on {server.url}", err=True)
    def _terminate(_signum, _frame):
        raise KeyboardInterrupt  # unwinds waitress' loop in the main thread

    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command("config")
@click.option("--config", "config", type=click.Path(dir_okay=False))
def show_config(config: str | None) -> None:
    """Print the validated settings as TOML-ish lines (secrets masked)."""
    try:
        settings = _settings(config, None, require_device=False)
    except YmirError as exc:
        _fail(exc)
    for key, value in asdict(settings).items():
        shown = "***" if key in SECRETS and value else value
        click.echo(f"{key} = {list(shown) if isinstance(shown, tuple) else shown!r}")


if __name__ == "__main__":
    main()
