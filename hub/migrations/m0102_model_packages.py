"""Model packages made from model stages by conversion jobs (int8 ONNX, OpenVINO IR, ...)."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE model_packages (
            id INTEGER PRIMARY KEY,
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            stage TEXT NOT NULL,
            target TEXT NOT NULL,
            backend TEXT NOT NULL,
            precision TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            status TEXT NOT NULL,            -- accepted | rejected | unvalidated
            reason TEXT NOT NULL DEFAULT '',
            accuracy TEXT NOT NULL DEFAULT '{}',
            speed TEXT NOT NULL DEFAULT '{}',
            job_id TEXT REFERENCES jobs(id),
            created_at REAL NOT NULL
        );
        CREATE INDEX model_packages_model ON model_packages(model_id)
        """,
    )
