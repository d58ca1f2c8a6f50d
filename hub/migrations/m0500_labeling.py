"""Labeling: tasks over a dataset version, their assignees, and each image's saved labels and lease."""

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE labeling_tasks (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id),
            name TEXT NOT NULL DEFAULT '',
            classes TEXT NOT NULL DEFAULT '[]',
            backend TEXT NOT NULL DEFAULT 'builtin',
            backend_state TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL CHECK (state IN ('open', 'in_progress', 'done', 'cancelled')),
            pre_annotations INTEGER NOT NULL DEFAULT 1,
            guideline TEXT,
            result_version_id INTEGER REFERENCES dataset_versions(id),
            created_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL,
            finished_at REAL
        );
        CREATE INDEX labeling_tasks_project ON labeling_tasks(project_id);
        CREATE TABLE labeling_assignees (
            task_id INTEGER NOT NULL REFERENCES labeling_tasks(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES users(id),
            PRIMARY KEY (task_id, user_id)
        ) WITHOUT ROWID;
        CREATE TABLE labeling_images (
            task_id INTEGER NOT NULL REFERENCES labeling_tasks(id) ON DELETE CASCADE,
            asset_sha1 TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
            boxes TEXT,                     -- JSON list of {x1, y1, x2, y2, class, source}, NULL when never saved
            updated_by INTEGER REFERENCES users(id),
            updated_at REAL,
            lease_user_id INTEGER,
            lease_until REAL,
            PRIMARY KEY (task_id, asset_sha1)
        ) WITHOUT ROWID;
        """,
    )
