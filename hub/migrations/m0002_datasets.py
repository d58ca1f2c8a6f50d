"""Dataset groups, immutable versions, assets (by sha1), version membership and annotations.

Built for bulk insert (no triggers, few indexes, WITHOUT ROWID membership) and fast counts
(``dataset_versions`` keeps its image/box totals, ``version_class_counts`` the per-class ones).
"""

from __future__ import annotations

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE dataset_groups (
            id INTEGER PRIMARY KEY,
            project_id INTEGER NOT NULL REFERENCES projects(id),
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            public INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (project_id, name)
        );
        CREATE TABLE dataset_versions (
            id INTEGER PRIMARY KEY,
            group_id INTEGER NOT NULL REFERENCES dataset_groups(id),
            project_id INTEGER NOT NULL REFERENCES projects(id),
            number INTEGER NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('importing', 'ready', 'failed')),
            source TEXT NOT NULL DEFAULT '{}',
            parent_ids TEXT NOT NULL DEFAULT '[]',
            operation TEXT NOT NULL DEFAULT 'import',
            note TEXT NOT NULL DEFAULT '',
            report TEXT,
            error TEXT,
            progress REAL NOT NULL DEFAULT 0,
            progress_message TEXT NOT NULL DEFAULT '',
            images INTEGER NOT NULL DEFAULT 0,
            gt_boxes INTEGER NOT NULL DEFAULT 0,
            pred_boxes INTEGER NOT NULL DEFAULT 0,
            created_by INTEGER REFERENCES users(id),
            created_at REAL NOT NULL,
            finished_at REAL,
            UNIQUE (group_id, number)
        );
        CREATE INDEX dataset_versions_project ON dataset_versions(project_id);
        CREATE TABLE assets (
            sha1 TEXT PRIMARY KEY,
            format TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            size_bytes INTEGER NOT NULL,
            image_quality REAL,
            created_at REAL NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE version_assets (
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            asset_sha1 TEXT NOT NULL REFERENCES assets(sha1),
            filename TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '{}',
            image_quality REAL,
            gt_count INTEGER NOT NULL DEFAULT 0,
            pred_count INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (version_id, asset_sha1)
        ) WITHOUT ROWID;
        CREATE INDEX version_assets_asset ON version_assets(asset_sha1);
        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            asset_sha1 TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('gt', 'pred')),
            class_id INTEGER NOT NULL REFERENCES classes(id),
            x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,
            difficult INTEGER NOT NULL DEFAULT 0,
            truncated INTEGER NOT NULL DEFAULT 0,
            pose TEXT NOT NULL DEFAULT '',
            confidence REAL,
            box_quality REAL,
            tags TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX annotations_version_asset ON annotations(version_id, asset_sha1);
        CREATE INDEX annotations_version_class ON annotations(version_id, kind, class_id);
        CREATE TABLE version_class_counts (
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            class_id INTEGER NOT NULL REFERENCES classes(id),
            boxes INTEGER NOT NULL,
            images INTEGER NOT NULL,
            PRIMARY KEY (version_id, kind, class_id)
        ) WITHOUT ROWID;
        """,
    )
