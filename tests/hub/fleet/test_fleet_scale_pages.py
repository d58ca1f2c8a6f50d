"""The fleet overview at fleet scale: a page of devices (filtered, paged) read with a bounded number
of queries, and prediction-record counts kept per device as records are stored (issue 15.3: pages
stay responsive while 1,000 agents stream)."""

from __future__ import annotations

import importlib
import re
import time

from hub.store import fleet as fleet_store
from hub.store import fleet_records as records_store


def _devices(database, n: int) -> list[str]:
    ids = [f"cam-{i:03d}" for i in range(n)]
    for i, d in enumerate(ids):
        fleet_store.create_device(database, d, f"Camera {i}", ["dock" if i % 3 == 0 else "gate"], f"tok-{d}")
    with database.write() as db:
        fleet_store.write_presence(db, [(1, time.time(), None, d) for d in ids[::2]])  # every other one online
        for d in ids:
            fleet_store.put_slot(db, d, "det", {"revision": 2, "enabled": True}, 1, None)
        fleet_store.write_reported(db, [(d, "det", 2, "healthy", "", "", 1, time.time()) for d in ids])
    return ids


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr data-device="([^"]+)"', page)


def test_overview_pages_devices_and_filters(client, workspace):
    _devices(workspace.database, 120)
    page = client.get("/deployment").get_data(as_text=True)
    assert _rows(page) == [f"cam-{i:03d}" for i in range(50)]
    assert "120 devices" in page and "60 online" in page and "60 offline" in page
    assert "Devices 1–50 of 120" in page and 'rel="next"' in page and 'rel="prev"' not in page
    assert page.count("healthy") >= 50  # each row's algorithm state, read in one query for the page
    targets = re.findall(r'<option value="(device:[^"]+|tag:[^"]+|all)"', page)
    assert "tag:dock" in targets and "tag:gate" in targets and "all" in targets
    assert sum(t.startswith("device:") for t in targets) == 50  # this page's devices, not all 120

    last = client.get("/deployment?page=3").get_data(as_text=True)
    assert _rows(last) == [f"cam-{i:03d}" for i in range(100, 120)]
    assert "Devices 101–120 of 120" in last and 'rel="next"' not in last and 'rel="prev"' in last

    tagged = client.get("/deployment?tag=dock&state=online").get_data(as_text=True)
    assert _rows(tagged) == [f"cam-{i:03d}" for i in range(0, 120, 6)]  # i % 3 == 0 and even
    assert "Devices 1–20 of 20" in tagged
    assert 'href="/deployment?page=2' not in tagged

    by_name = client.get("/deployment?q=camera 11").get_data(as_text=True)
    assert _rows(by_name) == ["cam-011", "cam-110", "cam-111", "cam-112", "cam-113", "cam-114", "cam-115",
                              "cam-116", "cam-117", "cam-118", "cam-119"]
    nothing = client.get("/deployment?q=zzz").get_data(as_text=True)
    assert _rows(nothing) == [] and "No devices match." in nothing
    # nonsense paging and filters are a page, not an error
    assert client.get("/deployment?page=-4&state=sideways").status_code == 200
    assert _rows(client.get("/deployment?page=99").get_data(as_text=True)) == []


def test_overview_reads_a_bounded_number_of_queries(client, app, workspace):
    """The page used to run two queries per device (2,000 for 1,000 devices)."""
    _devices(workspace.database, 200)
    client.get("/deployment")  # the session and this thread's connection are warm
    statements: list[str] = []
    conn = app.extensions["ymir"].database.db.conn
    conn.set_trace_callback(statements.append)
    try:
        assert client.get("/deployment").status_code == 200
    finally:
        conn.set_trace_callback(None)
    queries = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE"))]
    assert 0 < len(queries) <= 15, queries


def test_record_counts_follow_stored_records_and_ignore_redeliveries(workspace):
    database = workspace.database
    _devices(database, 3)

    def rows(device: str, ids: range) -> list[tuple]:
        return [(f"{device}-{i}", device, "det", 2, 1.0, 1, 4.0, "{}") for i in ids]

    with database.write() as db:
        assert records_store.insert_records(db, rows("cam-000", range(10)) + rows("cam-001", range(5))) == 15
    with database.write() as db:  # a redelivered batch plus new records
        assert records_store.insert_records(db, rows("cam-000", range(8, 14)) + rows("cam-001", range(5))) == 4
    assert records_store.count_records(database, "cam-000") == 14
    assert records_store.count_records(database, "cam-001") == 5
    assert records_store.count_records(database, "cam-002") == 0
    assert records_store.count_records(database) == 19
    assert records_store.count_by_device(database) == {"cam-000": 14, "cam-001": 5}

    # a failed write adds nothing to the counts either
    try:
        with database.write() as db:
            records_store.insert_records(db, rows("cam-002", range(3)))
            raise RuntimeError("disk went away")
    except RuntimeError:
        pass
    assert records_store.count_records(database) == 19

    # the migration counts records stored before it
    migration = importlib.import_module("hub.migrations.m0700_fleet_record_counts")
    with database.write() as db:
        db.execute("DROP TABLE edge_prediction_counts")
        migration.up(db)
    assert records_store.count_records(database, "cam-000") == 14 and records_store.count_records(database) == 19
