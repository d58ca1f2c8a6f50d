"""ymir-agent: the device daemon (MQTT desired state, model store, HTTP inference, edge mining)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ymir-edge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
