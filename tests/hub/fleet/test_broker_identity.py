"""Device identity on a real Mosquitto: the hub's password file + ACL keep each device to its own
topics, follow the device table (removed devices are dropped and refused, new ones connect without a
restart), ``ymir-hub broker config`` writes the same for an operator's Mosquitto, and TLS listeners
take only clients that trust the CA (a CA and server certificate made here with ``cryptography``)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fleet_helpers import MOSQUITTO_BIN, Api, HubServer, free_port, make_fleet_app, wait_port, wait_until

from agent import protocol

pytestmark = pytest.mark.skipif(MOSQUITTO_BIN is None, reason="mosquitto not installed")
P = "ymir/v1"


class Client:
    """A paho MQTT 5 client that records what happens to it (connack, disconnects, messages)."""

    def __init__(self, url: str, user: str, password: str, client_id: str | None = None, ca: Path | None = None):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        scheme, rest = url.split("://")
        host, port = rest.rsplit(":", 1)
        self.connack: list[str] = []
        self.disconnects: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.answered = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"ymir-agent-{user}",
                             protocol=mqtt.MQTTv5)
        self.c.username_pw_set(user, password)
        if scheme == "mqtts":
            self.c.tls_set(ca_certs=str(ca) if ca else None)
        self.c.reconnect_delay_set(60, 120)  # no quiet reconnects behind the test's back
        self.c.on_connect = lambda cl, u, f, rc, p: (self.connack.append(str(rc)), self.answered.set())
        self.c.on_disconnect = lambda cl, u, f, rc, p: self.disconnects.append(str(rc))
        self.c.on_message = lambda cl, u, m: self.messages.append((m.topic, bytes(m.payload)))
        try:
            self.c.connect(host, int(port))
        except OSError as exc:  # a TLS handshake refused (unknown CA) fails here
            self.connack.append(f"{type(exc).__name__}: {exc}")
            self.answered.set()
            return
        self.c.loop_start()
        self.answered.wait(5)

    @property
    def rc(self) -> str:
        return self.connack[0] if self.connack else "no answer"

    def subscribe(self, *topics: str) -> None:
        for t in topics:
            self.c.subscribe(t, 1)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, 1, retain).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _connects(url: str, user: str, password: str, **kw) -> str:
    c = Client(url, user, password, **kw)
    c.close()
    return c.rc


# --- a CA and a server certificate, made here -----------------------------------------------------------


def make_ca(folder: Path, name: str) -> tuple[Path, object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


def make_server_cert(folder: Path, ca_cert, ca_key, names: tuple[str, ...] = ("localhost", "127.0.0.1"),
                     stem: str = "server") -> tuple[Path, Path]:
    """A server certificate for ``names`` (DNS names or IP addresses) signed by the CA: (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _san(name: str):
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory):
    """(ca.pem, CA certificate, CA private key)."""
    return make_ca(tmp_path_factory.mktemp("ca"), "test-ca")


@pytest.fixture(scope="module")
def pki(tmp_path_factory, test_ca):
    """(ca.pem, server.pem, server.key, other-ca.pem): a broker certificate and a CA that did not sign it."""
    folder = tmp_path_factory.mktemp("pki")
    ca_path, ca_cert, ca_key = test_ca
    cert, key = make_server_cert(folder, ca_cert, ca_key)
    other, _, _ = make_ca(folder, "other-ca")
    return ca_path, cert, key, other


def _agent_session(device_id: str, url: str, token: str, store: Path, **extra):
    from agent.config import load_settings
    from agent.mqtt import MqttSession

    settings = load_settings(env={}, overrides={"device_id": device_id, "mqtt_url": url, "mqtt_username": device_id,
                                                "mqtt_password": token, "store_dir": str(store),
                                                "mqtt_reconnect_max": 1.0, **extra})
    got: list[tuple[str, bytes]] = []
    session = MqttSession(settings, on_message=lambda kind, payload: got.append((kind, payload)))
    session.start()
    return session, got


# --- the embedded Mosquitto with YMIR_BROKER_AUTH=1 ----------------------------------------------------


@pytest.fixture
def auth_hub(tmp_path, pki):
    """A served hub whose embedded Mosquitto requires passwords, with a TLS listener for devices."""
    ca, cert, key, _ = pki
    app, token = make_fleet_app(tmp_path, None, embedded_broker="mosquitto", broker_listen="127.0.0.1:0",
                                broker_auth=True, broker_tls_listen="127.0.0.1:0", broker_tls_cert=str(cert),
                                broker_tls_key=str(key))
    server = HubServer(app).start()
    api = Api(server.url, token)
    try:
        wait_until(lambda: api.ok(api.get("/api/v1/fleet"))["connected"], 15, what="hub connected with its password")
        yield app, api, api.ok(api.get("/api/v1/fleet"))
    finally:
        server.stop()
        app.extensions["ymir"].close()


def _provisioned(api, url: str, device_id: str) -> dict:
    d = api.ok(api.post("/api/v1/devices", json={"id": device_id}), 201)
    wait_until(lambda: _connects(url, device_id, d["token"]) == "Success", 10, what=f"{device_id} accepted")
    return d


def test_a_device_can_neither_write_nor_read_another_devices_topics(auth_hub):
    app, api, info = auth_hub
    url = info["broker"]
    a, b = _provisioned(api, url, "dev-a"), _provisioned(api, url, "dev-b")
    # the hub's retained desired state for dev-b (its first, empty one) sits on the broker
    clients = []
    try:
        b_sub = Client(url, "dev-b", b["token"])
        clients.append(b_sub)
        b_sub.subscribe(f"{P}/devices/dev-b/desired", f"{P}/devices/dev-b/cmd")
        wait_until(lambda: any(t.endswith("dev-b/desired") for t, _ in b_sub.messages), 10,
                   what="dev-b reads its own retained desired state")

        attacker = Client(url, "dev-a", a["token"])
        clients.append(attacker)
        assert attacker.rc == "Success"
        # reading: dev-b's desired by name, by wildcard, and everything
        attacker.subscribe(f"{P}/devices/dev-b/desired", f"{P}/devices/+/desired", f"{P}/#")
        # writing into dev-b's topics: uplinks the hub would ingest, and dev-b's own downlinks
        recs = [{"id": f"r{i}", "detections": []} for i in range(3)]
        attacker.publish(f"{P}/devices/dev-b/status", protocol.encode(protocol.status("dev-b", "online")), retain=True)
        attacker.publish(f"{P}/devices/dev-b/predictions", protocol.encode(protocol.prediction_batch("dev-b", 1, recs)))
        attacker.publish(f"{P}/devices/dev-b/desired", b'{"schema": 1, "revision": 999, "deployments": []}', retain=True)
        attacker.publish(f"{P}/devices/dev-b/cmd", protocol.encode(protocol.command("c1", "restart", "")))
        # nor may a device forge its own desired state or commands
        attacker.publish(f"{P}/devices/dev-a/desired", b'{"schema": 1, "revision": 999, "deployments": []}', retain=True)
        attacker.publish(f"{P}/devices/dev-a/cmd", protocol.encode(protocol.command("c2", "restart", "")))
        # its own uplinks go through (the control: the ACL is not just closed)
        own = [{"id": f"a{i}", "detections": []} for i in range(3)]
        attacker.publish(f"{P}/devices/dev-a/predictions", protocol.encode(protocol.prediction_batch("dev-a", 1, own)))
        wait_until(lambda: api.ok(api.get("/api/v1/devices/dev-a/predictions"))["count"] == 3, 10,
                   what="dev-a's own records")
        time.sleep(0.5)
        assert api.ok(api.get("/api/v1/devices/dev-b/predictions"))["count"] == 0
        assert not api.ok(api.get("/api/v1/devices/dev-b"))["online"]
        seen = {t for t, _ in attacker.messages}
        assert not [t for t in seen if "/dev-b/" in t], seen
        assert all(json.loads(p).get("revision") != 999 for t, p in attacker.messages if t.endswith("/desired"))
        assert len(b_sub.messages) == 1, b_sub.messages  # only the hub's desired state: no forged desired, no cmd
        # a fresh session of dev-a still gets the hub's desired state, not a forged one
        again = Client(url, "dev-a", a["token"], client_id="fresh")
        clients.append(again)
        again.subscribe(f"{P}/devices/dev-a/desired")
        wait_until(lambda: again.messages, 10, what="dev-a's retained desired")
        assert json.loads(again.messages[0][1])["revision"] != 999

        # a device cannot take over another's session by its client id (the broker uses the user name)
        squatter = Client(url, "dev-a", a["token"], client_id="ymir-agent-dev-b")
        clients.append(squatter)
        assert squatter.rc == "Success"
        time.sleep(0.5)
        assert b_sub.disconnects == []
        # and no device may take the hub's broker user name
        r = api.post("/api/v1/devices", json={"id": "ymir-hub"})
        assert r.status_code == 400 and "reserved" in r.json()["error"]
    finally:
        for c in clients:
            c.close()


def test_removed_devices_are_dropped_and_refused_new_ones_connect_without_restart(auth_hub, tmp_path):
    from hub.cli import main

    app, api, info = auth_hub
    url = info["broker"]
    broker_pid = app.extensions["fleet"].broker.proc.pid
    r1, r2 = _provisioned(api, url, "rm-api"), _provisioned(api, url, "rm-cli")  # added after the broker started
    clients = []
    try:
        c1, c2 = Client(url, "rm-api", r1["token"]), Client(url, "rm-cli", r2["token"])
        clients += [c1, c2]
        assert c1.rc == c2.rc == "Success"
        api.ok(api.delete("/api/v1/devices/rm-api"))
        # Mosquitto re-checks connected clients on reload: the open connection is dropped...
        wait_until(lambda: c1.disconnects, 10, what="rm-api's connection dropped on reload")
        assert c2.disconnects == []
        # ...and it cannot come back
        assert _connects(url, "rm-api", r1["token"]) == "Not authorized"
        # the same through the CLI on the workspace of a running hub (its fleet loop notices within a second)
        home = str(app.extensions["ymir"].settings.home)
        res = CliRunner().invoke(main, ["--home", home, "device", "remove", "rm-cli"])
        assert res.exit_code == 0, res.output
        wait_until(lambda: c2.disconnects, 10, what="rm-cli's connection dropped on reload")
        assert _connects(url, "rm-cli", r2["token"]) == "Not authorized"
        assert app.extensions["fleet"].broker.proc.pid == broker_pid  # reloaded, never restarted
    finally:
        for c in clients:
            c.close()


def test_embedded_tls_listener_takes_only_clients_trusting_the_ca(auth_hub, pki, tmp_path):
    ca, _, _, other_ca = pki
    app, api, info = auth_hub
    tls_url = info["broker_tls"]
    assert tls_url.startswith("mqtts://127.0.0.1:")
    d = _provisioned(api, info["broker"], "tls-1")
    session, got = _agent_session("tls-1", tls_url, d["token"], tmp_path / "agent", mqtt_ca_file=str(ca))
    try:
        assert session.connected.wait(10), "the agent connected over mqtts with the CA"
        wait_until(lambda: any(k == "desired" for k, _ in got), 10, what="desired state over TLS")
        assert session.publish("status", protocol.status("tls-1", "online"), wait=5)
        wait_until(lambda: api.ok(api.get("/api/v1/devices/tls-1"))["online"], 10, what="online over TLS")
    finally:
        session.stop()
    # an agent trusting another CA never connects (it keeps retrying, the broker never sees its password)
    wrong, wrong_got = _agent_session("tls-1", tls_url, d["token"], tmp_path / "agent2", mqtt_ca_file=str(other_ca))
    try:
        assert not wrong.connected.wait(3), "an agent trusting another CA connected"
        assert wrong_got == []
    finally:
        wrong.stop()
    assert "certificate verify failed" in _connects(tls_url, "tls-1", d["token"])  # the system's CAs
    assert "certificate verify failed" in _connects(tls_url, "tls-1", d["token"], ca=other_ca)
    assert _connects(tls_url, "tls-1", "wrong-token", ca=ca) == "Not authorized"  # TLS is not a password


# --- ymir-hub broker config: an operator's own Mosquitto ------------------------------------------------


def test_broker_config_runs_an_operators_mosquitto_with_tls(tmp_path, pki, test_ca):
    from hub.cli import main
    from hub.fleet.broker import HubClient
    from hub.fleet.broker_files import HUB_USER

    ca, _, _, other_ca = pki
    # this broker's certificate names only "localhost": clients dialling 127.0.0.1 must refuse it
    cert, key = make_server_cert(tmp_path, test_ca[1], test_ca[2], names=("localhost",), stem="localhost")
    home, conf_dir = str(tmp_path / "ws"), tmp_path / "broker"
    plain, tls = free_port(), free_port()
    runner = CliRunner()

    def run(*args, code=0):
        r = runner.invoke(main, ["--home", home, *args])
        assert r.exit_code == code, (args, r.output)
        return r.output

    run("init", "--admin-password", "password1")
    d1 = json.loads(run("device", "add", "op-1", "--json"))
    d2 = json.loads(run("device", "add", "op-2", "--json"))
    assert "need --tls-listen" in run("broker", "config", "--out", str(conf_dir), "--tls-cert", str(cert), code=2)
    args = ["broker", "config", "--out", str(conf_dir), "--listen", f"127.0.0.1:{plain}", "--tls-listen",
            f"127.0.0.1:{tls}", "--tls-cert", str(cert), "--tls-key", str(key), "--json"]
    if os.geteuid() == 0:
        args += ["--run-as", "root"]
    out = json.loads(run(*args))
    assert out["devices"] == ["op-1", "op-2"] and out["hub_password"]
    assert oct((conf_dir / "passwd").stat().st_mode & 0o777) == "0o600"
    assert d1["token"] not in (conf_dir / "passwd").read_text()  # hashes only
    proc = subprocess.Popen([MOSQUITTO_BIN, "-c", str(conf_dir / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    hub = session = None
    try:
        wait_port(plain)
        wait_port(tls)
        got = []
        hub = HubClient(f"mqtts://localhost:{tls}", P, "hub", lambda d, k, p: got.append((d, k)), username=HUB_USER,
                        password=out["hub_password"], ca_file=ca).start(wait=10)
        assert hub.connected.is_set(), "the hub connected over mqtts with the CA"
        session, agent_got = _agent_session("op-1", f"mqtts://localhost:{tls}", d1["token"], tmp_path / "a1",
                                            mqtt_ca_file=str(ca))
        assert session.connected.wait(10)
        assert hub.publish("op-1", "desired", protocol.desired(1, []))
        wait_until(lambda: any(k == "desired" for k, _ in agent_got), 10, what="desired state through TLS")
        assert session.publish("status", protocol.status("op-1", "online"), wait=5)
        wait_until(lambda: ("op-1", "status") in got, 10, what="the hub hears op-1")
        # the ACL holds here too: op-2 cannot publish as op-1
        c = Client(f"mqtt://127.0.0.1:{plain}", "op-2", d2["token"])
        c.publish(f"{P}/devices/op-1/reported", b"{}")
        c.close()
        time.sleep(0.3)
        assert ("op-1", "reported") not in got
        assert _connects(f"mqtt://127.0.0.1:{plain}", "op-2", "wrong") == "Not authorized"
        assert "certificate verify failed" in _connects(f"mqtts://localhost:{tls}", "op-2", d2["token"],
                                                        ca=other_ca)
        # the right CA, but a host the certificate does not name: refused too
        assert "mismatch" in _connects(f"mqtts://127.0.0.1:{tls}", "op-1", d1["token"], ca=ca)

        # devices change: rerun (the hub's password is kept), reload with SIGHUP
        run("device", "remove", "op-2")
        d3 = json.loads(run("device", "add", "op-3", "--json"))
        again = json.loads(run(*args))
        assert again["devices"] == ["op-1", "op-3"] and again["hub_password"] is None
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _connects(f"mqtt://127.0.0.1:{plain}", "op-3", d3["token"]) == "Success", 10,
                   what="op-3 accepted after the reload")
        assert _connects(f"mqtt://127.0.0.1:{plain}", "op-2", d2["token"]) == "Not authorized"
        assert _connects(f"mqtts://localhost:{tls}", HUB_USER, out["hub_password"], client_id="h2", ca=ca) == "Success"
    finally:
        if session:
            session.stop()
        if hub:
            hub.stop()
        proc.terminate()
        proc.wait(10)


def test_tls_settings_are_checked(tmp_path, pki):
    from agent.config import load_settings as agent_settings
    from detkit.errors import BadInput
    from hub.config import load_settings

    ca, cert, key, _ = pki
    with pytest.raises(BadInput, match="YMIR_BROKER_TLS_CERT and YMIR_BROKER_TLS_KEY"):
        load_settings(tmp_path, env={"YMIR_BROKER_TLS_LISTEN": "0.0.0.0:8883"})
    with pytest.raises(BadInput, match="YMIR_BROKER_TLS_LISTEN is not"):
        load_settings(tmp_path, env={"YMIR_BROKER_TLS_CERT": str(cert), "YMIR_BROKER_TLS_KEY": str(key)})
    with pytest.raises(BadInput, match="no such file"):
        load_settings(tmp_path, env={"YMIR_MQTT_CA_FILE": str(tmp_path / "missing.pem")})
    s = load_settings(tmp_path, env={"YMIR_BROKER_TLS_LISTEN": "0.0.0.0:8883", "YMIR_BROKER_TLS_CERT": str(cert),
                                     "YMIR_BROKER_TLS_KEY": str(key), "YMIR_MQTT_CA_FILE": str(ca)})
    assert s.broker_tls_cert == cert.resolve() and s.mqtt_ca_file == ca.resolve()
    with pytest.raises(BadInput, match="mqtt_ca_file"):
        agent_settings(env={}, overrides={"device_id": "x", "mqtt_ca_file": str(tmp_path / "missing.pem")})
