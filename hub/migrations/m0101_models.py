"""Models (trained or imported) and their stages."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE models (
            id INTEGER PRIMARY KEY,
            project_id INTEGER REFERENCES projects(id),
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            image TEXT NOT NULL DEFAULT '',
            folder TEXT NOT NULL DEFAULT '',           -- under the workspace's models/
            source TEXT NOT NULL DEFAULT 'trained',     -- trained | imported
            job_id TEXT REFERENCES jobs(id),
            train_version_id INTEGER,
            val_version_id INTEGER,
            class_names TEXT NOT NULL DEFAULT '[]',
            config TEXT NOT NULL DEFAULT '{}',
            best_stage TEXT,
            history TEXT NOT NULL DEFAULT '[]',
            state TEXT NOT NULL DEFAULT 'ready',
            created_at REAL NOT NULL,
            UNIQUE (project_id, name, version)
        );
        CREATE TABLE model_stages (
            model_id INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            files TEXT NOT NULL DEFAULT '[]',
            metrics TEXT NOT NULL DEFAULT '{}',
            timestamp REAL NOT NULL DEFAULT 0,
            PRIMARY KEY (model_id, name)
        ) WITHOUT ROWID
        """,
    )
