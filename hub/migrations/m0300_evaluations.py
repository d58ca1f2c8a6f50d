"""Caches for diagnosis and analysis: evaluation results, per-box labels, version analyses.

Dataset versions are immutable, so a cached row stays valid for as long as its versions exist;
rows go with them (``ON DELETE CASCADE``). ``params_hash`` covers every parameter that changes
the result plus the algorithm's version, so a new algorithm never reads an old row.
"""

from __future__ import annotations

from hub.store.schema import run_script


def up(db) -> None:
    run_script(
        db,
        """
        CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            gt_version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            pred_version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            params_hash TEXT NOT NULL,
            params TEXT NOT NULL DEFAULT '{}',
            result TEXT NOT NULL,
            elapsed_s REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            UNIQUE (gt_version_id, pred_version_id, params_hash)
        );
        CREATE INDEX evaluations_pred ON evaluations(pred_version_id);
        -- one row per evaluated box (gt boxes may live in another version than the predictions)
        CREATE TABLE evaluation_labels (
            evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
            annotation_id INTEGER NOT NULL,
            asset_sha1 TEXT NOT NULL,
            kind TEXT NOT NULL,
            class_id INTEGER NOT NULL,
            label TEXT NOT NULL,
            PRIMARY KEY (evaluation_id, annotation_id)
        ) WITHOUT ROWID;
        CREATE INDEX evaluation_labels_asset ON evaluation_labels(evaluation_id, label, asset_sha1);
        CREATE TABLE version_analyses (
            version_id INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
            params_hash TEXT NOT NULL,
            result TEXT NOT NULL,
            elapsed_s REAL NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            PRIMARY KEY (version_id, params_hash)
        ) WITHOUT ROWID
        """,
    )
