"""``ymir-hub device | algorithm | deploy | deployment`` on a real workspace."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fleet_helpers import package

from hub.cli import main


def test_fleet_cli_round_trip(tmp_path):
    home = str(tmp_path / "ws")
    cli = CliRunner()

    def run(*args, code=0):
        r = cli.invoke(main, ["--home", home, *args])
        assert r.exit_code == code, (args, r.output)
        return r.output

    run("init", "--admin-password", "password1")
    out = json.loads(run("device", "add", "cam-1", "--tags", "gate,a", "--json"))
    assert out["token"].startswith("ymird_") and out["tags"] == ["a", "gate"]
    assert "already exists" in run("device", "add", "cam-1", code=2)
    run("device", "add", "cam-2", "--tags", "gate")
    assert "cam-1" in run("device", "list") and "cam-2" in run("device", "list", "--tag", "gate")
    algo = json.loads(run("algorithm", "publish", "--package", str(package(tmp_path / "p")), "--json"))
    assert algo["name"] == "tiny" and algo["visibility"] == "private"
    assert "give exactly one" in run("algorithm", "publish", code=2)
    assert "public" in run("algorithm", "review", str(algo["id"]), "--approve", "--note", "ok")
    assert "tiny v1" in run("algorithm", "list", "--scope", "public")
    dep = json.loads(run("deploy", str(algo["id"]), "--target", "tag:gate", "--conf", "0.4", "--batch-percent", "50",
                         "--json"))
    assert dep["batches"] == 2 and dep["settings"] == {"conf": 0.4} and dep["counts"] == {"pending": 2}
    again = json.loads(run("deploy", str(algo["id"]), "--target", "tag:gate", "--conf", "0.4", "--batch-percent",
                           "50", "--json"))
    assert again["id"] == dep["id"]
    assert "no devices tagged" in run("deploy", str(algo["id"]), "--target", "tag:none", code=2)
    assert "use device:ID" in run("deploy", str(algo["id"]), "--target", "everything", code=2)
    assert "conf" in run("deploy", str(algo["id"]), "--target", "all", "--conf", "3", code=2)
    shown = run("deployment", "show", str(dep["id"]))
    assert "cam-1" in shown and "pending" in shown
    assert "rolling_back" in run("deployment", "rollback", str(dep["id"]))
    assert f"deployment {dep['id']}" in run("deployment", "list")
    token = json.loads(run("device", "token", "cam-1", "--json"))["token"]
    assert token != out["token"]
    run("device", "remove", "cam-2")
    assert "not found" in run("device", "show", "cam-2", code=2)
