"""Prediction records counted per device as they are stored, so pages and the API read a count of
1,000 rows instead of counting millions (``edge_predictions`` only grows)."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE edge_prediction_counts (
            device_id TEXT PRIMARY KEY,
            n INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        INSERT INTO edge_prediction_counts (device_id, n)
            SELECT device_id, count(*) FROM edge_predictions GROUP BY device_id
        """,
    )
